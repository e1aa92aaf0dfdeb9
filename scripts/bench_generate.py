"""Benchmark of generation's memory and time against the length of the speech (the target: peak
memory flat in length, progress shown before the first frame).

Speech of each length is made by playing the shared speech clips one after another (half a second
apart) and repeating them. Each measurement runs in a fresh process, so its peak resident memory
(the kernel's ru_maxrss) is that job's alone:

- "before frames": what `talkface generate` does before its first frame (read the speech, its
  phones, features, motion, frame plan), for every length;
- "generate": the whole `talkface generate` command, for lengths up to --whole-up-to (10 minutes
  of frames takes ~18 minutes on a 2-core CPU; frames are made 16 at a time, so their memory does
  not grow with length, which the shorter runs show).

    python scripts/bench_generate.py --actor ACTOR [--seconds 10 60 600] [--whole-up-to 60] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from audio2pose.features import load_speech
from personalize.bundle import Actor
from personalize.generate import GenerateConfig, plan_speech, speech_timings
from recon3d.video import AUDIO_RATE, read_audio

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "audio"


def make_speech(path: Path, seconds: float, sources: list[Path]) -> None:
    """`seconds` of 16 kHz speech: the `sources` played in turn, 0.5 s apart, repeated."""
    gap = np.zeros(AUDIO_RATE // 2, np.float32)
    one = np.concatenate([part for source in sources for part in (read_audio(source), gap)])
    samples = int(seconds * AUDIO_RATE)
    speech = np.tile(one, samples // len(one) + 1)[:samples]
    wavfile.write(path, AUDIO_RATE, (np.clip(speech, -1, 1) * 32767).astype(np.int16))


def before_frames(actor: str, speech: str) -> None:
    """`generate`'s work before its first frame (child process)."""
    loaded = Actor.load(actor)
    config = GenerateConfig()
    audio, num_frames = load_speech(speech, None, loaded.audio2pose.config.features)
    plan_speech(loaded, audio, num_frames, config, "cpu", speech_timings(audio, None, None, config))


def measure(command: list[str]) -> tuple[float, float]:
    """Runs `command`; its wall seconds and peak resident memory in MB."""
    with tempfile.TemporaryFile() as log:  # not a pipe: a long job's bars would fill it and block
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if code := os.waitstatus_to_exitcode(status):
            log.seek(0)
            sys.exit(f"{' '.join(command)} failed ({code}): {log.read().decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actor", type=Path, help="an actor bundle (talkface personalize)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600])
    parser.add_argument("--whole-up-to", type=float, default=60, help="longest speech to run the whole generate on")
    parser.add_argument("--audio", type=Path, nargs="+", help="speech clips to repeat (default: ../shared/data/audio)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--before-frames", nargs=2, metavar=("ACTOR", "SPEECH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.before_frames:
        before_frames(*args.before_frames)
        return 0
    if args.actor is None:
        parser.error("give the actor bundle to generate with: --actor ACTOR")
    sources = args.audio or sorted(SHARED_AUDIO.glob("*.wav"))
    if not sources:
        sys.exit(f"no speech clips: give --audio (none in {SHARED_AUDIO})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            speech = Path(tmp) / f"speech_{seconds:g}s.wav"
            make_speech(speech, seconds, sources)
            row = {"speech_seconds": seconds}
            row["before_frames_s"], row["before_frames_mb"] = measure(
                [sys.executable, __file__, "--before-frames", str(args.actor), str(speech)]
            )
            if seconds <= args.whole_up_to:
                output = Path(tmp) / "out.mp4"
                command = [
                    "talkface",
                    "generate",
                    "--actor",
                    str(args.actor),
                    "--audio",
                    str(speech),
                    "-o",
                    str(output),
                ]
                row["generate_s"], row["generate_mb"] = measure(
                    [str(Path(sys.executable).parent / command[0]), *command[1:]]
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| speech | before frames: s, peak MB | generate: s, peak MB |")
    print("|---|---|---|")
    for row in rows:
        whole = f"{row['generate_s']:.1f} s, {row['generate_mb']:.0f} MB" if "generate_s" in row else "-"
        print(
            f"| {row['speech_seconds']:g} s | {row['before_frames_s']:.1f} s, {row['before_frames_mb']:.0f} MB | {whole} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
