"""Reconstruction accuracy and speed on a folder of clips -> a markdown table (and JSON).

    .venv/bin/python scripts/bench_reconstruct.py ../shared/data/clips [--face-model default] [--json out.json]

Per clip: frames, wall time of track + fit + measurement (what `talkface reconstruct` does before
writing files), frames/s, mean 68-landmark reprojection error / outer-eye-corner distance, mean
skin PSNR of the re-render, and the fitted angles of the clip's most frontal frame, chosen from
the tracked 2D landmarks alone (nose tip midway between the outer eye corners, level eye line),
so the check does not depend on the fit it checks.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from recon3d.device import resolve_device
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.pretrain import corpus_videos
from recon3d.reconstruct import reconstruct_clip
from recon3d.regressor import CoeffRegressor
from recon3d.track import TrackConfig, track_video

FRONTAL_ASYMMETRY = 0.03
"""A frame counts as frontal in 2D when the nose tip is this close to midway between the eye corners..."""
FRONTAL_TILT = 2.0
"""... and the eye line within this many degrees of level."""


def most_frontal_frame(ibug68: np.ndarray) -> tuple[int, float, float]:
    """Frame whose 2D landmarks look most frontal: (index, horizontal asymmetry of the nose tip
    between the outer eye corners / their distance, eye-line tilt in degrees)."""
    right, left, nose = ibug68[:, 36], ibug68[:, 45], ibug68[:, 30]
    eye = left - right
    interocular = np.linalg.norm(eye, axis=1)
    asymmetry = np.abs((nose[:, 0] - right[:, 0]) - (left[:, 0] - nose[:, 0])) / interocular
    tilt = np.degrees(np.arctan2(eye[:, 1], eye[:, 0]))
    best = int(np.argmin(asymmetry + np.radians(np.abs(tilt))))
    return best, float(asymmetry[best]), float(tilt[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", type=Path)
    parser.add_argument("--face-model", default="default")
    parser.add_argument("--regressor", type=Path)
    parser.add_argument("--landmark-steps", type=int, default=FitConfig.landmark_steps)
    parser.add_argument("--photometric-steps", type=int, default=FitConfig.photometric_steps)
    parser.add_argument("--render-size", type=int, default=FitConfig.render_size)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--only", nargs="*", help="clip stems to run (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_face_model(args.face_model)
    regressor = None if args.regressor is None else CoeffRegressor.load(args.regressor, model).to(device)
    config = FitConfig(
        landmark_steps=args.landmark_steps, photometric_steps=args.photometric_steps, render_size=args.render_size
    )
    rows = []
    for video in corpus_videos(args.clips):
        if args.only and video.stem not in args.only:
            continue
        start = time.perf_counter()
        track = track_video(video, TrackConfig(), progress=False)
        recon, _ = reconstruct_clip(
            video, model, config, track=track, device=device, regressor=regressor, progress=False
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        angles = np.degrees(recon.split().angle.numpy())
        best, asymmetry, tilt = most_frontal_frame(track.ibug68)
        frontal = angles[best]
        rows.append(
            {
                "clip": video.stem,
                "size": recon.crop.frame_width,
                "frames": recon.num_frames,
                "seconds": seconds,
                "fps": recon.num_frames / seconds,
                "landmark_error": float(recon.landmark_error.mean()),
                "psnr": float(recon.psnr.mean()),
                "frontal_pitch_yaw_roll": frontal.round(2).tolist(),
                "frontal_2d": asymmetry < FRONTAL_ASYMMETRY and abs(tilt) < FRONTAL_TILT,
            }
        )
        print(
            f"{video.stem}: {rows[-1]['fps']:.1f} fps, lmk {100 * rows[-1]['landmark_error']:.2f}%, "
            f"PSNR {rows[-1]['psnr']:.2f} dB",
            flush=True,
        )
    print(
        f"\nface model {model.name}, device {device}, {torch.get_num_threads()} threads, "
        f"{config.landmark_steps} landmark + {config.photometric_steps} photometric steps at {config.render_size} px\n"
    )
    print(
        "| clip | size | frames | s | frames/s | landmark error (% IOD) | skin PSNR (dB) | most frontal frame: pitch/yaw/roll (deg) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['clip']} | {r['size']} | {r['frames']} | {r['seconds']:.1f} | {r['fps']:.1f} | "
            f"{100 * r['landmark_error']:.2f} | {r['psnr']:.2f} | {' / '.join(f'{a:.1f}' for a in r['frontal_pitch_yaw_roll'])}{'' if r['frontal_2d'] else ' (none frontal in 2D)'} |"
        )
    if rows:
        print(
            f"| **mean** | | {sum(r['frames'] for r in rows)} | {sum(r['seconds'] for r in rows):.1f} | "
            f"{np.mean([r['fps'] for r in rows]):.1f} | {100 * np.mean([r['landmark_error'] for r in rows]):.2f} | "
            f"{np.mean([r['psnr'] for r in rows]):.2f} | |"
        )
    frontal = np.array([r["frontal_pitch_yaw_roll"] for r in rows if r["frontal_2d"]]).reshape(-1, 3)
    if len(frontal):
        print(
            f"\n{len(frontal)} clips have a frame frontal in 2D (nose within {FRONTAL_ASYMMETRY:.0%} of midway, "
            f"eye line within {FRONTAL_TILT} deg): max |pitch| {np.abs(frontal[:, 0]).max():.1f}, "
            f"|yaw| {np.abs(frontal[:, 1]).max():.1f}, |roll| {np.abs(frontal[:, 2]).max():.1f} deg"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
