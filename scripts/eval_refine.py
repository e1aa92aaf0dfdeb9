"""The acceptance protocol of the refinement GAN: per clip, fine-tune an actor's refiner on the
first 70% of its frames, then drive it with the real coefficients of the last 30% and compare with
the real frames.

Per clip (WORK/<stem>/ holds the reconstruction cache and the training run; a rerun resumes):
1. track and reconstruct the whole clip (`reconstruct_clip`, the face model given);
2. the face region from the training frames' landmarks (`refine.data.face_region`), the pairs of
   every frame (`clip_pairs`), a refiner fine-tuned on the first 70% (`refine.actor.ACTOR_REFINE`,
   `--steps`), as the refine stage of `personalize` does;
3. held-out frames: each rendered from its real coefficients and blended into its real crop (the
   raw render), then refined as `generate` does (`ActorRefiner.refine_sequence`: windows of 3,
   pasted back over the face); all three cut to the face region at the network's size;
4. metrics inside each frame's face box (`refine.metrics.face_metrics`): PSNR and SSIM against the
   real frame, Laplacian-variance sharpness (ratio to the real frame's), dlib identity cosine to
   the mean of the real training frames' identity features;
5. temporal stability: on the held-out second (25 frames) with the least head motion (summed
   |change| of the reconstructed angles), the mean absolute frame-to-frame change inside one fixed
   face box, refined over real;
6. speed: refinement frames/s (region cut, network, paste back; batches of 16).

    python scripts/eval_refine.py --clips ../shared/data/clips --work /tmp/eval_refine --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from recon3d.facemodels import load_face_model
from recon3d.reconstruct import Reconstruction, load_crops, reconstruct_clip
from recon3d.track import FaceTrack, TrackConfig, track_video
from refine.actor import ACTOR_REFINE, ActorRefiner
from refine.data import clip_pairs, face_region, render_clip
from refine.metrics import face_box, face_metrics, frame_difference
from refine.train import train_refiner

log = logging.getLogger("talkface")
STATIC_FRAMES = 25


def reconstruction(video: Path, work: Path, face_model) -> tuple[FaceTrack, Reconstruction, np.ndarray]:
    track_path, recon_path = work / "track.npz", work / "coeffs.npz"
    if track_path.exists() and recon_path.exists():
        track = FaceTrack.load(track_path)
        return track, Reconstruction.load(recon_path), load_crops(video, track, progress=False)
    track = track_video(video, TrackConfig(), progress=False)
    recon, crops = reconstruct_clip(video, face_model, track=track, progress=False)
    track.save(track_path)
    recon.save(recon_path)
    return track, recon, crops


def still_window(angle: np.ndarray, length: int) -> slice:
    """The `length` consecutive frames with the least summed head-angle change."""
    motion = np.abs(np.diff(angle, axis=0)).sum(1)
    totals = np.convolve(motion, np.ones(length - 1), mode="valid")
    start = int(np.argmin(totals))
    return slice(start, start + length)


def evaluate_clip(video: Path, work: Path, face_model, steps: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    track, recon, crops = reconstruction(video, work, face_model)
    cut = int(round(0.7 * len(crops)))
    landmarks = track.crop.frame_to_crop(track.ibug68)
    config = dataclasses.replace(ACTOR_REFINE, steps=steps)
    region = face_region(landmarks[:cut], crops.shape[1], config.network.size)
    pairs = clip_pairs(recon, face_model, crops, landmarks, region)
    prepare = time.perf_counter() - start
    start = time.perf_counter()
    refiner, history = train_refiner(pairs.subset(slice(0, cut)), work / "refine", config, progress=False)
    train_seconds = time.perf_counter() - start

    rendered, coverage = render_clip(recon, face_model, crops)
    actor = ActorRefiner(refiner, region)
    held = np.arange(cut, len(crops))
    start = time.perf_counter()
    refined_crops = actor.refine_sequence(rendered[held], coverage[held])
    refine_fps = len(held) / (time.perf_counter() - start)

    real = pairs.reals[held]
    raw = pairs.renders[held]
    refined = np.stack([region.crop(crop) for crop in refined_crops])
    points = pairs.landmarks[held]
    result = {
        "clip": video.name,
        "frames": len(crops),
        "held_out": len(held),
        "steps": steps,
        "prepare_seconds": round(prepare, 1),
        "train_seconds": round(train_seconds, 1),
        "refine_fps": round(refine_fps, 1),
        "train_l1": round(history[-1]["l1"], 5),
        **face_metrics({"raw": raw, "refined": refined}, real, points, pairs.identity[:cut]),
    }
    still = still_window(recon.split().angle.numpy()[held], min(STATIC_FRAMES, len(held)))
    box = face_box(points[still].reshape(-1, 2), region.size)
    for name, images in (("real", real), ("raw", raw), ("refined", refined)):
        result[f"frame_change_{name}"] = frame_difference(images[still], box)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=Path("../shared/data/clips"))
    parser.add_argument("--limit", type=int, help="only the first N clips (sorted by name)")
    parser.add_argument("--only", nargs="*", help="clip stems to evaluate")
    parser.add_argument("--face-model", default="default")
    parser.add_argument("--steps", type=int, default=ACTOR_REFINE.steps)
    parser.add_argument("--work", type=Path, default=Path("/tmp/eval_refine"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(2)
    face_model = load_face_model(args.face_model)
    clips = sorted(args.clips.glob("*.mp4"))
    if args.only:
        clips = [c for c in clips if c.stem in args.only]
    clips = clips[: args.limit]
    rows = []
    for clip in clips:
        row = evaluate_clip(clip, args.work / clip.stem, face_model, args.steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    keys = [k for k in rows[0] if isinstance(rows[0][k], float)]
    print("mean", json.dumps({k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}))


if __name__ == "__main__":
    main()
