"""Training pairs of the refinement GAN: a clip's frames rendered from its own reconstruction,
and the real frames.

The render of frame t is what `generate` would paste for that frame: the actor's face (albedo,
lighting, expression, pose of frame t; mouth interior and teeth) blended into the real frame's
crop by `render.composite.blend`. So the GAN learns to turn exactly what generation produces into
the real face, and outside the face the input already is the target.

The network sees the *face region*: a fixed square of the actor's crop around the face in every
frame (`face_region`), at the network's size. The crop also holds hair, neck and shoulders, which
the render does not touch; spending the network's pixels on the face is what lets a 128-pixel
network keep the detail of a 256-pixel crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon3d.crop import CropTransform, stable_crop
from recon3d.facemodel import FaceModel
from recon3d.reconstruct import Reconstruction
from refine.identity import identity_features
from render.composite import CompositeConfig, blend
from render.face import FaceRenderer


@dataclass
class RefinePairs:
    """Frames of one or more clips at the network's size, in clip order."""

    renders: np.ndarray
    """(N, S, S, 3) uint8 rendered frames (the face blended into the real crop)."""
    reals: np.ndarray
    """(N, S, S, 3) uint8 real frames."""
    landmarks: np.ndarray
    """(N, 68, 2) iBUG-68 landmarks of the real frames, pixels of the S x S image."""
    identity: np.ndarray
    """(N, 128) unit identity features of the real frames (`refine.identity`)."""
    clip: np.ndarray
    """(N,) index of the clip each frame comes from: windows do not cross clips."""

    def __len__(self) -> int:
        return len(self.renders)

    @property
    def size(self) -> int:
        return self.renders.shape[1]

    def subset(self, index: np.ndarray | slice) -> RefinePairs:
        return RefinePairs(
            self.renders[index], self.reals[index], self.landmarks[index], self.identity[index], self.clip[index]
        )

    @classmethod
    def concatenate(cls, parts: list[RefinePairs]) -> RefinePairs:
        clip = np.concatenate([np.full(len(part), k) for k, part in enumerate(parts)])
        return cls(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("renders", "reals", "landmarks", "identity")
            ),
            clip,
        )

    def window_indices(self, frames: np.ndarray, window: int) -> np.ndarray:
        """(len(frames), window) indices of the frames around each of `frames` (it in the middle),
        repeating a clip's first and last frame at its ends."""
        return window_indices(frames, window, self.clip)


def window_indices(frames: np.ndarray, window: int, clip: np.ndarray) -> np.ndarray:
    """See `RefinePairs.window_indices`; `clip` (N,) labels the frames' clips."""
    offsets = np.arange(window) - window // 2
    index = np.clip(frames[:, None] + offsets, 0, len(clip) - 1)
    # Past a clip's end the neighbour belongs to another clip: use the frame's own clip's edge.
    same = clip[index] == clip[frames][:, None]
    return np.where(
        same, index, np.where(offsets < 0, _clip_start(frames, clip)[:, None], _clip_end(frames, clip)[:, None])
    )


def _clip_start(frames: np.ndarray, clip: np.ndarray) -> np.ndarray:
    starts = np.r_[0, np.flatnonzero(np.diff(clip)) + 1]
    return starts[np.searchsorted(starts, frames, side="right") - 1]


def _clip_end(frames: np.ndarray, clip: np.ndarray) -> np.ndarray:
    ends = np.r_[np.flatnonzero(np.diff(clip)), len(clip) - 1]
    return ends[np.searchsorted(ends, frames)]


FACE_REGION_SCALE = 1.5
"""Side of the face region as a multiple of the largest landmark box (brows to chin): with the
forehead and some room for the head to move."""


def face_region(landmarks: np.ndarray, crop_size: int, size: int, scale: float = FACE_REGION_SCALE) -> CropTransform:
    """The fixed square of a `crop_size` crop that holds the face of every frame, given their
    `(T, 68, 2)` iBUG-68 landmarks (crop pixels), resampled to `size` pixels."""
    boxes = np.concatenate([landmarks.min(1), landmarks.max(1)], axis=1)
    return stable_crop(boxes, crop_size, crop_size, size, scale)


def render_clip(
    recon: Reconstruction,
    face_model: FaceModel,
    crops: np.ndarray,
    composite: CompositeConfig = CompositeConfig(),
    device: torch.device | str = "cpu",
    batch_frames: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(T, S, S, 3) uint8: each crop with the face rendered from its own coefficients blended in,
    and (T, S, S) the render's coverage."""
    renderer = FaceRenderer(face_model, recon.albedo, recon.camera, torch.device(device))
    coeffs = recon.split("cpu")
    out, coverage = np.empty_like(crops), np.empty(crops.shape[:3], np.float32)
    for index in torch.arange(len(crops)).split(batch_frames):
        images, covered, _ = renderer.render(coeffs[index].to(device))
        for k, t in enumerate(index.tolist()):
            out[t] = blend(images[k], crops[t], covered[k], composite)[0]
            coverage[t] = covered[k]
    return out, coverage


def clip_pairs(
    recon: Reconstruction,
    face_model: FaceModel,
    crops: np.ndarray,
    landmarks: np.ndarray,
    region: CropTransform,
    composite: CompositeConfig = CompositeConfig(),
    device: torch.device | str = "cpu",
) -> RefinePairs:
    """A clip's training pairs in its face `region`, from its reconstruction, `(T, C, C, 3)` crops
    and their `(T, 68, 2)` iBUG-68 landmarks (crop pixels)."""
    renders = np.stack([region.crop(image) for image in render_clip(recon, face_model, crops, composite, device)[0]])
    reals = np.stack([region.crop(image) for image in crops])
    points = region.frame_to_crop(landmarks).astype(np.float32)
    return RefinePairs(renders, reals, points, identity_features(reals, points), np.zeros(len(crops), np.int64))
