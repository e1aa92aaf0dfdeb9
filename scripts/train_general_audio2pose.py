"""Trains the general (corpus) audio2pose model of a face model and writes the shipped file.

Runs `audio2pose.train.pretrain_audio2pose` with the default `PretrainAudio2PoseConfig` (seed 0)
into a work folder (resumable: rerun the same command; reconstructions already in WORK/cache
are reused), then writes `audio2pose/assets/general-<face model name>.pt`: weights, style
statistics and config, no optimizer state, plus a small `provenance` dict (corpus clips, steps,
final losses, toolkit version). `audio2pose.load_general_model(name)` loads it.

    .venv/bin/python scripts/train_general_audio2pose.py --face-model builtin \
        --corpus ../shared/data/clips --work out/general-audio2pose/builtin
    TALKFACE_HOME=/tmp/tfhome_a2p .venv/bin/python scripts/train_general_audio2pose.py \
        --face-model /tmp/ict/ict-facekit/FaceXModel --corpus ../shared/data/clips \
        --work out/general-audio2pose/ict [--reuse-cache /tmp/a2p_cache]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from audio2pose.model import AudioToPose
from audio2pose.train import PretrainAudio2PoseConfig, pretrain_audio2pose
from recon3d.facemodels import load_face_model
from recon3d.pretrain import corpus_videos

ASSETS = Path(__file__).resolve().parents[1] / "audio2pose" / "assets"


def toolkit_version() -> str:
    try:
        return version("talkface")
    except PackageNotFoundError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--face-model", required=True, help="face model spec, as `talkface --face-model` takes it")
    parser.add_argument("--corpus", type=Path, required=True, help="folder of talking-head clips")
    parser.add_argument("--work", type=Path, required=True, help="work folder of the training run (resumable)")
    parser.add_argument("-o", "--output", type=Path,
                        help="shipped file (default: audio2pose/assets/general-<face model name>.pt)")
    parser.add_argument("--reuse-cache", type=Path,
                        help="folder of <stem>.coeffs.npz reconstructions to copy into WORK/cache first "
                             "(those already there are kept)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    face_model = load_face_model(args.face_model)
    videos = corpus_videos(args.corpus)
    if args.reuse_cache:
        cache = args.work / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        for video in videos:
            source, target = args.reuse_cache / f"{video.stem}.coeffs.npz", cache / f"{video.stem}.coeffs.npz"
            if source.is_file() and not target.exists():
                shutil.copy2(source, target)

    config = PretrainAudio2PoseConfig()
    start = time.perf_counter()
    pretrain_audio2pose(args.corpus, args.work, face_model, config, args.device, progress=False)
    elapsed = time.perf_counter() - start

    model, checkpoint = AudioToPose.load_checkpoint(args.work / "audio2pose.pt", face_model.name)
    history = json.loads(checkpoint["history"])
    last = history[-1]
    provenance = {
        "corpus": [video.name for video in videos],
        "steps": int(checkpoint["step"]),
        "seed": config.train.seed,
        "train_loss": float(last["train_total"]),
        "val_loss": float(last["val_total"]),
        "val_fraction": config.val_fraction,
        "train_config": json.dumps(asdict(config)),
        "toolkit_version": toolkit_version(),
    }
    output = args.output or ASSETS / f"general-{face_model.name}.pt"
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output, face_model.name, extra={"provenance": provenance})
    AudioToPose.load(output, face_model.name)  # loads under weights_only
    print(f"{output}: face model {face_model.name} (exp_dim {model.exp_dim}), {provenance['steps']} steps on "
          f"{len(videos)} clips, train loss {provenance['train_loss']:.4f}, held-out loss {provenance['val_loss']:.4f} "
          f"(exp {last['val_exp']:.4f}, pose {last['val_pose']:.4f}), {output.stat().st_size / 1024:.0f} KiB; "
          f"this run {elapsed:.0f} s")


if __name__ == "__main__":
    main()
