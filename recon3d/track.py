"""Dense face tracking of one clip: per-frame landmarks, boxes, confidence, and the stable crop.

`track_video` decodes the clip once at 25 fps (streaming, so memory does not grow with length),
runs `FaceMeshDetector` on every frame, keeps the largest face, fills short gaps, smooths the
tracks (`smooth_track`) and fixes the clip's crop (`stable_crop`). A face too small to be found
in the whole frame (a person far off in 1080p footage) is searched for in tiles
(`find_small_face`) and tracked in the region around it. All coordinates are full-frame pixels as
described in `recon3d.landmarks`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recon3d.crop import CropTransform, stable_crop
from recon3d.errors import InputError
from recon3d.landmarks import (
    NOSE_TIP_MESH,
    NUM_MESH_LANDMARKS,
    FaceMeshDetector,
    find_small_face,
    landmark_box,
    mesh_to_ibug68,
)
from recon3d.smoothing import SmoothingConfig, smooth_track
from recon3d.video import VIDEO_FPS, atomic_path, iter_frames, probe

log = logging.getLogger("talkface")

TRACK_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrackConfig:
    crop_size: int = 256
    """Side of the stable crop in pixels."""
    crop_scale: float = 1.8
    """Crop side as a multiple of the largest face box side."""
    max_gap: int = 5
    """Longest run of frames without a face that is filled by interpolation; longer ones fail."""
    min_detection_confidence: float = 0.5
    """mediapipe's threshold for starting to track a face."""
    rival_face: float = 0.6
    """A second face whose box side is at least this fraction of the largest's is a rival: in
    more than a tenth of the frames, which of the two is the actor is not clear and the video is
    refused. (A smaller one, someone in the background, is left out with a warning.)"""
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)


@dataclass(frozen=True)
class FaceTrack:
    """The tracked face of one clip at 25 fps; T frames."""

    mesh: np.ndarray
    """(T, 478, 3) float32 smoothed mesh landmarks, frame pixels."""
    mesh_raw: np.ndarray
    """(T, 478, 3) float32 landmarks before smoothing (gaps already filled)."""
    confidence: np.ndarray
    """(T,) float32 BlazeFace score of the tracked face; 0 where the detector missed it or the
    frame was interpolated."""
    detected: np.ndarray
    """(T,) bool, False where the landmarks were interpolated over a gap."""
    num_faces: np.ndarray
    """(T,) int8 faces the mesh found in each frame."""
    crop: CropTransform
    fps: float = VIDEO_FPS

    @property
    def num_frames(self) -> int:
        return len(self.mesh)

    @property
    def boxes(self) -> np.ndarray:
        """(T, 4) x0, y0, x1, y1 face boxes of the smoothed mesh."""
        return landmark_box(self.mesh)

    @property
    def ibug68(self) -> np.ndarray:
        """(T, 68, 2) smoothed iBUG-68 landmarks in frame pixels."""
        return mesh_to_ibug68(self.mesh)[..., :2]

    def save(self, path: str | os.PathLike) -> None:
        """Writes an .npz of plain arrays (no pickles), atomically."""
        with atomic_path(path) as tmp:
            np.savez_compressed(
                tmp,
                format_version=TRACK_FORMAT_VERSION,
                mesh=self.mesh,
                mesh_raw=self.mesh_raw,
                ibug68=self.ibug68,
                boxes=self.boxes,
                confidence=self.confidence,
                detected=self.detected,
                num_faces=self.num_faces,
                fps=self.fps,
                crop_box=np.array([self.crop.x0, self.crop.y0, self.crop.side]),
                crop_size=self.crop.size,
                frame_size=np.array([self.crop.frame_width, self.crop.frame_height]),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceTrack:
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: not a readable track file ({err}); rerun `talkface track`") from None
        version = int(data.get("format_version", -1))
        if version != TRACK_FORMAT_VERSION:
            raise InputError(f"{path}: track format {version}, expected {TRACK_FORMAT_VERSION}; rerun `talkface track`")
        x0, y0, side = (float(v) for v in data["crop_box"])
        width, height = (int(v) for v in data["frame_size"])
        return cls(
            mesh=data["mesh"],
            mesh_raw=data["mesh_raw"],
            confidence=data["confidence"],
            detected=data["detected"],
            num_faces=data["num_faces"],
            crop=CropTransform(x0, y0, side, int(data["crop_size"]), width, height),
            fps=float(data["fps"]),
        )


def _timestamp(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{seconds % 60:05.2f}"


def missing_runs(detected: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where `detected` (T,) is False."""
    padded = np.concatenate([[True], detected.astype(bool), [True]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def fill_gaps(points: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Linearly interpolates (T, ...) tracks over frames where `detected` is False.

    Gaps at the start or end hold the nearest detected frame. Needs one detected frame.
    """
    known = np.flatnonzero(detected)
    flat = points.reshape(len(points), -1)
    filled = np.empty_like(flat)
    frames = np.arange(len(points))
    for j in range(flat.shape[1]):
        filled[:, j] = np.interp(frames, known, flat[known, j])
    return filled.reshape(points.shape)


def still_segment_jitter(track: FaceTrack, window: int = 25) -> tuple[float, float, int]:
    """Nose-tip jitter on the clip's stillest `window` frames, as a fraction of the crop side.

    The still segment is where the mean of all 478 raw landmarks moves least: averaging 478
    points cancels their independent noise, so this measures head motion, not jitter. Jitter is
    the mean frame-to-frame displacement of the nose tip there. Returns (raw, smoothed, first
    frame of the segment).
    """
    window = min(window, track.num_frames)
    centre = track.mesh_raw[:, :, :2].mean(axis=1)
    motion = np.linalg.norm(np.diff(centre, axis=0), axis=1)  # (T-1,)
    if len(motion) < window - 1 or window < 2:
        return 0.0, 0.0, 0
    start = int(np.argmin(np.convolve(motion, np.ones(window - 1), "valid")))

    def jitter(mesh: np.ndarray) -> float:
        nose = mesh[start : start + window, NOSE_TIP_MESH, :2]
        return float(np.linalg.norm(np.diff(nose, axis=0), axis=1).mean() / track.crop.side)

    return jitter(track.mesh_raw), jitter(track.mesh), start


def track_video(path: str | os.PathLike, config: TrackConfig = TrackConfig(), progress: bool = True) -> FaceTrack:
    """Tracks the largest face of a video (or a photo, as a one-frame video) at 25 fps.

    Raises InputError when no face is found, or when a run of more than `config.max_gap` frames
    has none (naming its time range).
    """
    info = probe(path)
    name = Path(path).name
    meshes, confidence, detected, num_faces, rivals = _track_faces(path, info, config, None, progress)
    region = None if detected.any() else _small_face_region(path, info)
    if region is not None:
        log.info("%s: no face in the whole frame; tracking the small face found at %s", name, region.tolist())
        found = _track_faces(path, info, config, region, progress)
        # Most frames, or it was not the actor's face: then "no face found" is the right answer.
        if found[2].mean() >= 0.5:
            meshes, confidence, detected, num_faces, rivals = found
    # Counted, not taken from probe: container durations can disagree with the decoded frames.
    total = len(meshes)
    if not detected.any():
        raise InputError(f"{name}: no face found; give a video where the actor's face is clearly visible")
    for start, end in missing_runs(detected):
        if end - start > config.max_gap:
            raise InputError(
                f"{name}: no face from {_timestamp(start / VIDEO_FPS)} to {_timestamp(end / VIDEO_FPS)} "
                f"(frames {start}-{end - 1}); trim that part or give a video where the face stays in view"
            )
    rival = int(np.sum(rivals))
    if rival > 0.1 * total:
        raise InputError(
            f"{name}: two faces of about the same size in {rival} of {total} frames, so which is the actor "
            "is not clear; crop the video to the actor's face, or film them alone"
        )
    multi = int((num_faces > 1).sum())
    if multi:
        log.warning("%s: more than one face in %d of %d frames; tracking the largest", name, multi, total)
    if not detected.all():
        log.info("%s: filled %d frames without a face by interpolation", name, int((~detected).sum()))
    meshes = fill_gaps(meshes, detected)
    boxes = landmark_box(meshes)
    face_size = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
    smoothed = smooth_track(meshes, VIDEO_FPS, face_size, config.smoothing)
    crop = stable_crop(landmark_box(smoothed), info.width, info.height, config.crop_size, config.crop_scale)
    return FaceTrack(smoothed, meshes, confidence, detected, num_faces, crop)


def _track_faces(
    path: str | os.PathLike, info, config: TrackConfig, region: np.ndarray | None, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[bool]]:
    """Per frame: the largest face's mesh, its confidence, whether there was one, the number of
    faces and whether a rival was there; in the x0, y0, x1, y1 `region` of each frame only, when
    given (the coordinates stay the whole frame's)."""
    meshes, confidence, detected, num_faces, rivals = [], [], [], [], []
    x0, y0, x1, y1 = (0, 0, info.width, info.height) if region is None else (int(v) for v in region)
    offset = np.array([x0, y0, 0], np.float32)
    with FaceMeshDetector(
        min_detection_confidence=config.min_detection_confidence, static_images=info.is_image
    ) as detector:
        frames = tqdm(
            iter_frames(path), total=info.num_frames(), desc="track", unit="frame", disable=not progress, leave=False
        )
        for frame in frames:
            faces = detector(frame[y0:y1, x0:x1])
            num_faces.append(len(faces))
            rivals.append(len(faces) > 1 and _side(faces[1].box) >= config.rival_face * _side(faces[0].box))
            detected.append(bool(faces))
            meshes.append(faces[0].mesh + offset if faces else np.zeros((NUM_MESH_LANDMARKS, 3), np.float32))
            confidence.append(faces[0].confidence if faces else 0.0)
    return (
        np.stack(meshes),
        np.array(confidence, np.float32),
        np.array(detected),
        np.array(num_faces, np.int8),
        rivals,
    )


SMALL_FACE_SEARCH_FRAMES = 8
"""Frames, spread over the clip, searched for a small face (`find_small_face`)."""
SMALL_FACE_MARGIN = 1.5
"""Face sides added on each side of the small face's box to make the region it is tracked in:
room for the head's motion, and a face of a quarter of the region or so, as the face mesh likes."""


def _small_face_region(path: str | os.PathLike, info) -> np.ndarray | None:
    """The x0, y0, x1, y1 region of the frames to track a face too small for the whole-frame
    search in (None where there is none)."""
    count = info.num_frames()
    picks = set(np.linspace(0, count - 1, min(count, SMALL_FACE_SEARCH_FRAMES)).round().astype(int).tolist())
    frames = [frame for t, frame in enumerate(iter_frames(path)) if t in picks]
    found = [box for box in find_small_face(frames) if box is not None]
    if len(found) < 0.5 * len(picks):  # a face is there most of the time; a speck in the noise is not
        return None
    boxes = np.stack(found)
    box = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
    margin = SMALL_FACE_MARGIN * max(box[2] - box[0], box[3] - box[1])
    return np.array(
        [
            max(0, box[0] - margin),
            max(0, box[1] - margin),
            min(info.width, box[2] + margin),
            min(info.height, box[3] + margin),
        ]  # fmt: skip
    ).round()


def _side(box: np.ndarray) -> float:
    """Side of a square as big as the x0, y0, x1, y1 box."""
    return float(np.sqrt(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)))
