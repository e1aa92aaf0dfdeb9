"""Trains the general (corpus) audio2pose model of a face model, the one one-shot (photo) actors use.

Runs `audio2pose.train.pretrain_audio2pose` (seed 0) into a work folder (resumable: rerun the same
command; the clips are tracked and reconstructed once into the corpus cache, `recon3d.corpus`), then writes
`$TALKFACE_HOME/models/general-audio2pose-<face model name>.pt` (`audio2pose.general`): weights,
style statistics and config, no optimizer state, plus a small `provenance` dict (corpus clips,
steps, final losses, toolkit version), and, for a face model whose expressions are not ARKit
blendshapes, its mouth prior `$TALKFACE_HOME/models/general-mouth-<face model name>.npz`
(`audio2pose.articulation.corpus_prior`: the clips' own mouth shapes, from their decoded and
aligned speech, averaged). `scripts/setup.sh` runs it for the built-in face model:

    .venv/bin/python scripts/train_general_audio2pose.py --face-model builtin --corpus ../shared/data/clips

The defaults are quick: reconstructions from landmarks only (the targets are expression and head
pose, which the photometric stage barely moves) and 200 training steps (on the 20 shared clips the
held-out loss is lowest after 100-200 steps and rises after).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

from audio2pose.articulation import corpus_prior, corpus_prior_path, footage_shapes, table_prior
from audio2pose.general import general_model_path
from audio2pose.metrics import mouth_aperture
from audio2pose.model import AudioToPose
from audio2pose.phones import speech_phones
from audio2pose.train import PretrainAudio2PoseConfig, pretrain_audio2pose
from personalize import toolkit_version
from recon3d.corpus import CorpusCache
from recon3d.facemodels import load_face_model
from recon3d.facemodels.paths import talkface_home
from recon3d.fit import FitConfig
from recon3d.pretrain import corpus_videos
from recon3d.reconstruct import Reconstruction
from recon3d.video import AUDIO_RATE, VIDEO_FPS, read_audio


def write_mouth_prior(videos: list[Path], recons: list[Reconstruction], face_model) -> None:
    clips = []
    for video, recon in zip(videos, recons):
        coeffs = recon.split("cpu")
        aperture = mouth_aperture(face_model, coeffs.id[0], coeffs.exp)
        audio = read_audio(video, AUDIO_RATE, round(len(coeffs.exp) * AUDIO_RATE / VIDEO_FPS))
        clips.append(footage_shapes(coeffs.exp.numpy(), aperture, speech_phones(audio)))
    path = corpus_prior_path(face_model.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    corpus_prior(clips).save(path)
    print(f"{path}: mouth prior of {len(clips)} clips")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--face-model", required=True, help="face model spec, as `talkface --face-model` takes it")
    parser.add_argument("--corpus", type=Path, required=True, help="folder of talking-head clips")
    parser.add_argument(
        "--work",
        type=Path,
        help="work folder of the training run (resumable; default: "
        "$TALKFACE_HOME/work/general-audio2pose/<face model name>)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="model file (default: $TALKFACE_HOME/models/general-audio2pose-<face model name>.pt)",
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--landmark-steps", type=int, default=300, help="landmark-fit steps of the reconstructions")
    parser.add_argument("--photometric-steps", type=int, default=0, help="photometric-fit steps of the reconstructions")
    parser.add_argument(
        "--cache", type=Path, help="corpus cache (tracks, reconstructions; default: $TALKFACE_HOME/corpus)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    face_model = load_face_model(args.face_model)
    args.work = args.work or talkface_home() / "work" / "general-audio2pose" / face_model.name
    videos = corpus_videos(args.corpus)
    cache = CorpusCache(args.cache)

    default = PretrainAudio2PoseConfig()
    config = PretrainAudio2PoseConfig(
        train=replace(default.train, steps=args.steps),
        fit=FitConfig(landmark_steps=args.landmark_steps, photometric_steps=args.photometric_steps),
    )
    start = time.perf_counter()
    pretrain_audio2pose(args.corpus, args.work, face_model, config, args.device, progress=False, cache=cache)
    elapsed = time.perf_counter() - start

    if table_prior(face_model) is None:
        write_mouth_prior(videos, cache.reconstructions(videos, face_model, config.fit, progress=False), face_model)
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
    output = args.output or general_model_path(face_model.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output, face_model.name, extra={"provenance": provenance})
    AudioToPose.load(output, face_model.name)  # loads under weights_only
    print(
        f"{output}: face model {face_model.name} (exp_dim {model.exp_dim}), {provenance['steps']} steps on "
        f"{len(videos)} clips, train loss {provenance['train_loss']:.4f}, held-out loss {provenance['val_loss']:.4f} "
        f"(exp {last['val_exp']:.4f}, pose {last['val_pose']:.4f}), {output.stat().st_size / 1024:.0f} KiB; "
        f"this run {elapsed:.0f} s"
    )


if __name__ == "__main__":
    main()
