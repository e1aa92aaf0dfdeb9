"""Per-actor audio2pose fine-tuning time on a ~12 s clip (the issue's budget: 3 minutes on a
2-core CPU), split into feature extraction (MFCC + phone recognition) and training.

    python scripts/bench_audio2pose.py --general out/pretrain/audio2pose/audio2pose.pt \
        --recon out/reconstruct/coeffs.npz  # talkface reconstruct ../shared/data/clips/vox_741400104.mp4

The reconstruction of the clip is an input (its time is `scripts/bench_reconstruct.py`'s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from audio2pose.model import AudioToPose
from audio2pose.train import FinetuneConfig, finetune, motion_clip
from recon3d.device import resolve_device
from recon3d.reconstruct import Reconstruction

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips" / "vox_741400104.mp4"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_CLIP, help="the actor's clip (default: a 12 s vox clip)")
    parser.add_argument("--recon", type=Path, required=True, help="its coeffs.npz (from `talkface reconstruct`)")
    parser.add_argument("--general", type=Path, help="general model (default: train from scratch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    recon = Reconstruction.load(args.recon)
    general = AudioToPose.load(args.general, recon.face_model).to(device) if args.general else None
    config = FinetuneConfig()
    start = time.perf_counter()
    clip = motion_clip(args.video, recon, (general.config if general else config.model).features)
    features_s = time.perf_counter() - start
    start = time.perf_counter()
    finetune(clip, general, config, device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    steps = (config.train if general else config.scratch).steps
    result = {
        "clip": args.video.stem,
        "frames": clip.num_frames,
        "seconds_of_video": clip.num_frames / recon.fps,
        "device": str(device),
        "threads": args.threads,
        "from": "general" if general else "scratch",
        "steps": steps,
        "features_s": features_s,
        "finetune_s": train_s,
        "total_s": features_s + train_s,
    }
    print(
        f"{result['clip']}: {result['frames']} frames ({result['seconds_of_video']:.1f} s), fine-tuned from "
        f"{result['from']} on {device} ({args.threads} threads): features {features_s:.1f} s + {steps} steps "
        f"{train_s:.1f} s = {result['total_s']:.1f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
