"""The audio2pose acceptance protocol: per clip, fine-tune on the first 70% of the frames, predict
the last 30% from its audio, compare with that segment's 3D reconstruction.

Reports per clip and on average: expression MSE (raw coefficients) against predicting the
training mean; mouth-opening Pearson r against the mean baseline (r = 0: a constant predicts no
opening) and against the audio loudness (RMS per frame) as a second, stronger baseline; HS and raw
W1 per angle against two static heads, one at the training segment's mean pose (what a generator
can know) and one at the tested segment's (DESIGN.md's "mean real pose", an oracle), and against
the training poses replayed. `--sweep` also reports HS at other pose amplitudes.

    python scripts/eval_audio2pose.py --general out/pretrain-audio2pose/audio2pose.pt \
        --face-model ict --json eval.json

Clip reconstructions are read from (or written to) the corpus cache (`recon3d.corpus`), which
`talkface pretrain audio2pose` fills. The general model must not have seen the tested segments: `pretrain
audio2pose` holds out the last 30% of every clip by default.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audio2pose.features import load_speech
from audio2pose.metrics import ANGLE_NAMES, mouth_aperture, pearson, pose_baselines, pose_similarity
from audio2pose.model import POSE_AMPLITUDE, AudioToPose
from audio2pose.train import FinetuneConfig, finetune, motion_clip
from recon3d.corpus import CorpusCache
from recon3d.device import resolve_device
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.pretrain import corpus_videos
from recon3d.video import VIDEO_FPS

DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"


def loudness(video: Path, num_frames: int, sample_rate: int) -> np.ndarray:
    """RMS of the audio per video frame."""
    audio, _ = load_speech(video, num_frames)
    hop = sample_rate / VIDEO_FPS
    return np.array(
        [np.sqrt(np.mean(audio[int(t * hop) : int((t + 1) * hop)] ** 2) + 1e-12) for t in range(num_frames)]
    )


def evaluate_clip(
    video: Path,
    recon,
    face_model,
    general: AudioToPose | None,
    config: FinetuneConfig,
    fraction: float,
    device: torch.device,
    pose_amplitude: float | None = POSE_AMPLITUDE,
    sweep: tuple[float | None, ...] = (),
) -> dict:
    clip = motion_clip(video, recon)
    head, tail = clip.split(fraction)
    start = time.perf_counter()
    model = finetune(head, general, config, device, progress=False)
    seconds = time.perf_counter() - start
    predicted = model.predict(tail.features, pose_amplitude)
    E = model.exp_dim
    real_exp = torch.from_numpy(tail.targets[:, :E])
    mean_exp = torch.from_numpy(head.targets[:, :E].mean(0))
    identity = torch.from_numpy(recon.coeffs[0, recon.layout.slice("id")])
    real_open = mouth_aperture(face_model, identity, real_exp)
    pred_open = mouth_aperture(face_model, identity, predicted.exp.cpu())
    rms = loudness(video, clip.num_frames, model.config.features.sample_rate)[head.num_frames :]
    real_deg = np.degrees(tail.targets[:, E : E + 3])
    train_deg = np.degrees(head.targets[:, E : E + 3])
    pose = pose_similarity(real_deg, predicted.angle_degrees())
    oracle = pose_similarity(real_deg, np.repeat(real_deg.mean(0, keepdims=True), len(real_deg), 0))
    sweep_hs = {str(a): pose_similarity(real_deg, model.predict(tail.features, a).angle_degrees())["hs"] for a in sweep}
    return {
        "clip": video.stem,
        "train_frames": head.num_frames,
        "test_frames": tail.num_frames,
        "finetune_s": seconds,
        "exp_mse": float(((predicted.exp.cpu() - real_exp) ** 2).mean()),
        "exp_mse_mean": float(((mean_exp - real_exp) ** 2).mean()),
        "mouth_r": pearson(pred_open, real_open),
        "mouth_r_loudness": pearson(rms, real_open),
        **{f"{k}": v for k, v in pose.items()},
        **pose_baselines(real_deg, train_deg),
        **{f"oracle_{k}": v for k, v in oracle.items()},
        **({"sweep_hs": sweep_hs} if sweep else {}),
    }


def table(rows: list[dict]) -> str:
    w1 = lambda r, p="": " ".join(f"{r[f'{p}w1_{a}']:4.1f}" for a in ANGLE_NAMES)  # noqa: E731
    hs = lambda r: f"{r['hs']:.3f} ({r['static_hs']:.3f}, {r['replay_hs']:.3f}, {r['oracle_hs']:.3f})"  # noqa: E731
    lines = [
        "| clip | frames train/test | exp MSE (mean baseline) | mouth r (loudness) | HS (static, replay, oracle static) "
        "| W1 pitch yaw roll, deg (static) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['train_frames']}/{r['test_frames']} | {r['exp_mse']:.4f} ({r['exp_mse_mean']:.4f}) "
            f"| {r['mouth_r']:.2f} ({r['mouth_r_loudness']:.2f}) | {hs(r)} | {w1(r)} ({w1(r, 'static_')}) |"
        )
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if isinstance(rows[0][k], float)}
    lines.append(
        f"| **mean** | | {mean['exp_mse']:.4f} ({mean['exp_mse_mean']:.4f}) | {mean['mouth_r']:.2f} "
        f"({mean['mouth_r_loudness']:.2f}) | {hs(mean)} | {w1(mean)} ({w1(mean, 'static_')}) |"
    )
    if "sweep_hs" in rows[0]:
        amplitudes = list(rows[0]["sweep_hs"])
        lines += [
            "",
            "| pose amplitude | " + " | ".join(amplitudes) + " |",
            "|---" * (len(amplitudes) + 1) + "|",
            "| mean HS | " + " | ".join(f"{np.mean([r['sweep_hs'][a] for r in rows]):.3f}" for a in amplitudes) + " |",
        ]
    return "\n".join(lines)


def amplitude(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of test clips")
    parser.add_argument(
        "--cache",
        type=Path,
        help="corpus cache of the reconstructions (default: $TALKFACE_HOME/corpus, `recon3d.corpus`)",
    )
    parser.add_argument(
        "--general", type=Path, help="general model from `talkface pretrain audio2pose` (default: from scratch)"
    )
    parser.add_argument("--face-model", default="default")
    parser.add_argument("--fraction", type=float, default=0.7, help="head of each clip used for fine-tuning")
    parser.add_argument("--steps", type=int, help="fine-tuning steps (default: FinetuneConfig's)")
    parser.add_argument("--only", nargs="*", help="clip stems to evaluate")
    parser.add_argument(
        "--pose-amplitude",
        type=amplitude,
        default=POSE_AMPLITUDE,
        help="spread of the predicted pose in the actor's units ('none': the LSTM's own)",
    )
    parser.add_argument(
        "--sweep", type=amplitude, nargs="*", default=(), help="also report mean HS at these pose amplitudes"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="write the per-clip results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    device = resolve_device(args.device)
    face_model = load_face_model(args.face_model)
    general = AudioToPose.load(args.general, face_model.name).to(device) if args.general else None
    config = FinetuneConfig()
    if args.steps:
        config.train.steps = config.scratch.steps = args.steps
    videos = [v for v in corpus_videos(args.clips) if not args.only or v.stem in args.only]
    recons = CorpusCache(args.cache).reconstructions(videos, face_model, FitConfig(), device)
    rows = []
    for video, recon in zip(videos, recons):
        rows.append(
            evaluate_clip(
                video, recon, face_model, general, config, args.fraction, device, args.pose_amplitude, tuple(args.sweep)
            )
        )
        r = rows[-1]
        print(
            f"{r['clip']}: exp MSE {r['exp_mse']:.4f} (mean {r['exp_mse_mean']:.4f}), mouth r {r['mouth_r']:.2f} "
            f"(loudness {r['mouth_r_loudness']:.2f}), HS {r['hs']:.3f} (static {r['static_hs']:.3f}), "
            f"fine-tune {r['finetune_s']:.0f} s",
            file=sys.stderr,
        )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
