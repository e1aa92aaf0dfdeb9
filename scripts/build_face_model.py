"""Builds the built-in face model from talking-head clips (mediapipe meshes -> PCA).

Tracks every clip with `recon3d.track.track_video`, builds the model with
`recon3d.facemodels.build_mediapipe_face_model` and writes it (float32, compressed) where
`load_face_model("builtin")` finds it. Prints the explained variance of the kept modes.

    .venv/bin/python scripts/build_face_model.py --clips ../shared/data/clips \
        -o recon3d/assets/mediapipe_face.npz [--id-dim 16 --exp-dim 32] [--tracks DIR]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from recon3d.facemodels import build_mediapipe_face_model
from recon3d.track import FaceTrack, track_video

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "recon3d" / "assets" / "mediapipe_face.npz"
CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def track_clips(clips: Path, tracks: Path | None) -> list[FaceTrack]:
    """Tracks every clip of the folder; with `tracks`, reuses/stores the tracks there as .npz."""
    paths = sorted(p for p in clips.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)
    if not paths:
        raise SystemExit(f"no clips in {clips}")
    result = []
    for path in paths:
        saved = tracks / f"{path.stem}.npz" if tracks else None
        if saved and saved.is_file():
            track = FaceTrack.load(saved)
        else:
            start = time.perf_counter()
            track = track_video(path, progress=False)
            print(f"tracked {path.name}: {track.num_frames} frames in {time.perf_counter() - start:.1f} s")
            if saved:
                track.save(saved)
        result.append(track)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, required=True, help="folder of talking-head clips, one identity each")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--id-dim", type=int, default=16)
    parser.add_argument("--exp-dim", type=int, default=32)
    parser.add_argument("--tracks", type=Path, help="folder to cache the tracks in (reused when present)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tracks = track_clips(args.clips, args.tracks)
    model = build_mediapipe_face_model([t.mesh for t in tracks], args.id_dim, args.exp_dim)
    model.save(args.output, compress=True)
    info = model.info
    print(
        f"{args.output}: {model.num_vertices} vertices, {model.num_faces} triangles, "
        f"{info['clips']} clips, {info['frames']} frames, {args.output.stat().st_size / 1024:.0f} KiB"
    )
    print(
        f"identity: {model.layout.id_dim} modes explain {info['id_explained']:.1%} of the between-clip variance "
        f"(first five: {', '.join(f'{r:.1%}' for r in info['id_ratio'][:5])})"
    )
    print(
        f"expression: {model.layout.exp_dim} modes explain {info['exp_explained']:.1%} of the within-clip variance "
        f"(first five: {', '.join(f'{r:.1%}' for r in info['exp_ratio'][:5])})"
    )


if __name__ == "__main__":
    main()
