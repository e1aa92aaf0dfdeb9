"""Files a person (or a later stage) reads: the crop video and a landmark preview after tracking,
the fitted face as a mesh after reconstruction."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import cv2
import numpy as np
import trimesh
from tqdm import tqdm

from recon3d.landmarks import landmark_box
from recon3d.track import FaceTrack
from recon3d.video import AUDIO_RATE, VideoWriter, atomic_path, iter_frames, probe, read_audio

# iBUG-68 contours drawn as polylines: (first, last + 1, closed).
_IBUG_CONTOURS = (
    (0, 17, False),
    (17, 22, False),
    (22, 27, False),
    (27, 31, False),
    (31, 36, False),
    (36, 42, True),
    (42, 48, True),
    (48, 60, True),
    (60, 68, True),
)


def write_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray) -> Path:
    """Writes a (V, 3) `vertices`, (F, 3) `faces` mesh with (V, 3) `colours` in [0, 1] as its vertex
    colours, as PLY or binary glTF by `path`'s suffix (.ply, .glb; trimesh), atomically."""
    path = Path(path)
    rgb = np.rint(np.clip(colours, 0, 1) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices, faces, vertex_colors=rgb, process=False)  # keep the model's vertex order
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=path.suffix[1:].lower())
    return path


def draw_landmarks(frame: np.ndarray, ibug68: np.ndarray, confidence: float, detected: bool = True) -> np.ndarray:
    """A copy of an RGB frame with the 68 landmarks, their box and the confidence drawn on it."""
    out = frame.copy()
    scale = max(1, round(max(frame.shape[:2]) / 400))
    colour = (40, 220, 80) if detected else (250, 160, 30)  # orange where interpolated
    for first, last, closed in _IBUG_CONTOURS:
        pts = np.rint(ibug68[first:last] * 4).astype(np.int32)  # 2 fractional bits: sub-pixel lines
        cv2.polylines(out, [pts], closed, colour, scale, cv2.LINE_AA, shift=2)
    x0, y0, x1, y1 = np.rint(landmark_box(ibug68)).astype(int)
    cv2.rectangle(out, (x0, y0), (x1, y1), (230, 230, 230), scale)
    cv2.putText(
        out,
        f"conf {confidence:.2f}",
        (x0, max(12 * scale, y0 - 4 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4 * scale,
        (230, 230, 230),
        scale,
        cv2.LINE_AA,
    )
    return out


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Writes an RGB image (png/jpg by suffix), atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def export_track(
    video: str | os.PathLike, track: FaceTrack, out_dir: str | os.PathLike, preview: bool = True, progress: bool = True
) -> list[Path]:
    """Writes `track.npz`, the crop (`crop.mp4`, or `crop.png` for a photo) and the preview.

    The videos carry the source's audio (mono 16 kHz) when it has any. Returns the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = probe(video)
    ibug68 = track.ibug68
    # track.npz goes last: its presence means the export finished.
    if info.is_image:
        frame = next(iter_frames(video))
        paths = [out_dir / "crop.png"] + ([out_dir / "preview.png"] if preview else [])
        write_image(paths[0], track.crop.crop(frame))
        if preview:
            write_image(paths[1], draw_landmarks(frame, ibug68[0], float(track.confidence[0])))
    else:
        audio = (
            read_audio(video, num_samples=round(track.num_frames / track.fps * AUDIO_RATE)) if info.has_audio else None
        )
        paths = [out_dir / "crop.mp4"] + ([out_dir / "preview.mp4"] if preview else [])
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(VideoWriter(p, track.fps, audio)) for p in paths]
            frames = tqdm(
                iter_frames(video),
                total=track.num_frames,
                desc="export",
                unit="frame",
                disable=not progress,
                leave=False,
            )
            for t, frame in enumerate(frames):
                writers[0].write(track.crop.crop(frame))
                if preview:
                    writers[1].write(
                        draw_landmarks(frame, ibug68[t], float(track.confidence[t]), bool(track.detected[t]))
                    )
    track.save(out_dir / "track.npz")
    return [*paths, out_dir / "track.npz"]
