"""Benchmark of the per-actor job and of generation (the targets: personalize a 12 s clip in at
most 10 minutes, generate at least 10 frames/s with 256 x 256 face crops, on a 2-core CPU).

Personalizes VIDEO from scratch into a fresh bundle (stage by stage times from the manifest),
then generates SPEECH with each pose mode and reports frames/s (the whole job: speech features,
motion, background matching, rendering, compositing, encoding) and the seam visibility:

    python scripts/bench_personalize.py --video ../shared/data/clips/vox_741400104.mp4 \
        --audio ../shared/data/audio/radio34_8s.wav [--face-model PATH] [--device cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from personalize.bundle import Actor
from personalize.generate import POSE_MODES, GenerateConfig, generate
from personalize.pipeline import PersonalizeConfig, personalize
from recon3d.device import resolve_device
from recon3d.video import probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--face-model", default="default")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target machine has 2 cores)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    report: dict = {
        "video": args.video.name,
        "seconds": probe(args.video).duration,
        "device": str(device),
        "threads": args.threads,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "actor"
        start = time.perf_counter()
        bundle = personalize(
            args.video,
            root,
            PersonalizeConfig(face_model=args.face_model, crop_size=args.crop_size),
            device,
            progress=False,
        )
        report["personalize_seconds"] = time.perf_counter() - start
        report["stages"] = {name: stage["seconds"] for name, stage in bundle.manifest["stages"].items()}
        actor = Actor.load(root)
        report["face_model"] = actor.face_model.name
        report["generate"] = {}
        for mode in POSE_MODES:
            result = generate(
                actor, args.audio, Path(tmp) / f"{mode}.mp4", GenerateConfig(pose_mode=mode), device, progress=False
            )
            report["generate"][mode] = {
                "frames": result.num_frames,
                "seconds": result.seconds,
                "frames_per_second": result.num_frames / result.seconds,
                "seam_visibility": result.seam_visibility,
            }
    print(
        f"personalize {report['video']} ({report['seconds']:.1f} s, {report['face_model']}, {device}): "
        f"{report['personalize_seconds']:.0f} s"
    )
    print("| stage | seconds |\n|---|---|")
    for name, seconds in report["stages"].items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"\ngenerate {args.audio.name} at {args.crop_size}x{args.crop_size} crops:")
    print("| pose mode | frames | frames/s | seam visibility |\n|---|---|---|---|")
    for mode, row in report["generate"].items():
        print(f"| {mode} | {row['frames']} | {row['frames_per_second']:.1f} | {row['seam_visibility']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
