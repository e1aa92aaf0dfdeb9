"""Jobs sharing the CPU: wall time of `talkface personalize` alone and with others at once.

Each job is its own `talkface personalize` process into a fresh bundle, started together; each
setting is an environment for them all (`--env NAME=VALUE ...`, e.g. `OMP_WAIT_POLICY=ACTIVE`
for OpenMP's spinning waits, `TALKFACE_THREADS=2`), or none: what the command does by itself.

    python scripts/bench_contention.py --jobs 1 2 --setting "" "OMP_WAIT_POLICY=ACTIVE TALKFACE_THREADS=2"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_jobs(video: Path, count: int, env: dict[str, str], args: argparse.Namespace, work: Path) -> list[float]:
    """Wall seconds of each of `count` personalize jobs started at once."""
    processes = []
    for k in range(count):
        bundle = work / f"job{k}"
        shutil.rmtree(bundle, ignore_errors=True)
        argv = [sys.executable, "-m", "personalize.cli", "-q", "personalize", str(video), "--actor", str(bundle)]
        log = open(work / f"job{k}.log", "w")
        processes.append(
            (time.perf_counter(), subprocess.Popen(argv + args.extra, stdout=log, stderr=log, env=env), log)
        )
    seconds = []
    for start, process, log in processes:
        if process.wait():
            raise SystemExit(f"a job failed, see {log.name}")
        seconds.append(time.perf_counter() - start)
        log.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=Path("../shared/data/clips/vox_00015.mp4"))
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--setting", nargs="+", default=[""], help="space-separated NAME=VALUE per setting")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more personalize options")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        for setting in args.setting:
            env = dict(os.environ)
            for item in setting.split():
                name, value = item.split("=", 1)
                env[name] = value
            for count in args.jobs:
                seconds = run_jobs(args.video.resolve(), count, env, args, Path(tmp))
                rows.append(
                    {
                        "setting": setting or "(as shipped)",
                        "jobs": count,
                        "seconds": [round(s, 1) for s in seconds],
                        "slowest": round(max(seconds), 1),
                        "load": os.getloadavg()[0],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
