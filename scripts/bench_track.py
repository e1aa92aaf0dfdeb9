"""Benchmark and acceptance figures of face tracking on a folder of clips.

For each clip: tracking throughput (decode at 25 fps + face mesh + detector + gap filling +
smoothing + crop, i.e. `track_video`; writing the crop and preview videos is timed apart),
frames with landmarks found, confidence, and nose-tip jitter on the stillest second before and
after smoothing (`still_segment_jitter`, as a fraction of the crop side). Prints a markdown table.

    .venv/bin/python scripts/bench_track.py [CLIPS_DIR] [--export] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from recon3d.export import export_track
from recon3d.track import still_segment_jitter, track_video
from recon3d.video import probe

DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"


def bench_clip(path: Path, export: bool) -> dict:
    info = probe(path)
    start = time.perf_counter()
    track = track_video(path, progress=False)
    seconds = time.perf_counter() - start
    raw, smoothed, _ = still_segment_jitter(track)
    row = {
        "clip": path.name,
        "size": f"{info.width}x{info.height}",
        "frames": track.num_frames,
        "track_fps": track.num_frames / seconds,
        "found": float(track.detected.mean()),
        "conf_min": float(track.confidence.min()),
        "conf_mean": float(track.confidence.mean()),
        "jitter_raw": raw,
        "jitter": smoothed,
    }
    if export:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            export_track(path, track, out, progress=False)
            row["export_fps"] = track.num_frames / (time.perf_counter() - start)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="?", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--export", action="store_true", help="also time writing crop.mp4 + preview.mp4")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = [bench_clip(p, args.export) for p in sorted(args.clips.glob("*.mp4"))]
    export = " export fps |" if args.export else ""
    print(f"| clip | size | frames | track fps | found | conf min / mean | jitter raw -> smoothed |{export}")
    print("|---|---|---|---|---|---|---|" + ("---|" if args.export else ""))
    for r in rows:
        extra = f" {r['export_fps']:.0f} |" if args.export else ""
        print(
            f"| {r['clip']} | {r['size']} | {r['frames']} | {r['track_fps']:.0f} | {100 * r['found']:.1f}% | "
            f"{r['conf_min']:.2f} / {r['conf_mean']:.2f} | {100 * r['jitter_raw']:.3f}% -> {100 * r['jitter']:.3f}% |{extra}"
        )
    print()
    for size in sorted({r["size"] for r in rows}, key=lambda s: int(s.split("x")[0])):
        group = [r for r in rows if r["size"] == size]
        fps = sum(r["frames"] for r in group) / sum(r["frames"] / r["track_fps"] for r in group)
        print(f"- {size}: {len(group)} clips, {fps:.0f} frames/s tracking")
    print(
        f"- landmarks found on {100 * min(r['found'] for r in rows):.1f}% of frames at worst; "
        f"smoothed nose jitter {100 * np.mean([r['jitter'] for r in rows]):.3f}% of the crop on average, "
        f"{100 * max(r['jitter'] for r in rows):.3f}% at worst; {os.cpu_count()} CPU cores"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
