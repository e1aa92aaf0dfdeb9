"""Image metrics of refined frames (DESIGN.md): face-crop PSNR and SSIM against the real frames,
Laplacian-variance sharpness, dlib identity similarity, and frame-to-frame change for temporal
stability.

The face crop is the box around a frame's iBUG-68 landmarks, widened by `FACE_MARGIN` of its size
on each side: the part of the image the render and refinement change (outside it the render
already is the real frame, which would inflate every score alike).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from refine.identity import identity_features, identity_similarity

FACE_MARGIN = 0.1


def face_box(
    landmarks: np.ndarray, size: int | tuple[int, int], margin: float = FACE_MARGIN
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer box around `(68, 2)` landmarks, widened by `margin`, inside the
    image of side `size` (or (width, height))."""
    low, high = landmarks.min(0), landmarks.max(0)
    pad = (high - low) * margin
    limit = np.broadcast_to(np.asarray(size), (2,))
    x0, y0 = np.floor(low - pad).astype(int).clip(0, limit)
    x1, y1 = np.ceil(high + pad).astype(int).clip(0, limit)
    return int(x0), int(y0), int(x1), int(y1)


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def psnr(image: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """PSNR (dB) of uint8 `image` against `reference` inside `box`."""
    error = np.mean((_crop(image, box).astype(np.float64) - _crop(reference, box)) ** 2)
    return float(10 * np.log10(255.0**2 / max(error, 1e-10)))


def ssim(image: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int]) -> float:
    return float(structural_similarity(_crop(image, box), _crop(reference, box), channel_axis=2, data_range=255))


def sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the grey face crop: higher is sharper."""
    grey = cv2.cvtColor(np.ascontiguousarray(_crop(image, box)), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def frame_difference(frames: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean absolute change (0-255) between consecutive uint8 frames inside one fixed `box`."""
    region = np.stack([_crop(frame, box) for frame in frames]).astype(np.float32)
    return float(np.abs(np.diff(region, axis=0)).mean())


def evenly_spaced(count: int, most: int | None) -> np.ndarray:
    """Indices of at most `most` of `count` frames, evenly spaced from the first to the last (all
    of them for None)."""
    if most is None or most >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, most).round().astype(int))


def face_metrics(
    images: dict[str, np.ndarray],
    real: np.ndarray,
    landmarks: np.ndarray,
    reference: np.ndarray,
    identity_frames: int | None = None,
) -> dict[str, float]:
    """Means over frames of each named `(T, S, S, 3)` uint8 image stack (e.g. raw render, refined)
    against the `real` frames, inside each frame's `face_box` of its real `(T, 68, 2)` landmarks:
    `psnr_<name>`, `ssim_<name>`, `sharpness_<name>`, and `identity_<name>`, the dlib identity
    cosine to the mean of the `reference` `(N, 128)` features (the actor's real training frames),
    over at most `identity_frames` frames, evenly spaced (dlib's network is the slow part); plus
    `sharpness_real` and `identity_real`, the real frames' own."""
    boxes = [face_box(points, real.shape[1]) for points in landmarks]
    chosen = evenly_spaced(len(real), identity_frames)
    result = {}
    for name, stack in images.items():
        result[f"psnr_{name}"] = float(np.mean([psnr(i, r, b) for i, r, b in zip(stack, real, boxes)]))
        result[f"ssim_{name}"] = float(np.mean([ssim(i, r, b) for i, r, b in zip(stack, real, boxes)]))
    for name, stack in {**images, "real": real}.items():
        result[f"sharpness_{name}"] = float(np.mean([sharpness(i, b) for i, b in zip(stack, boxes)]))
        features = identity_features(stack[chosen], landmarks[chosen])
        result[f"identity_{name}"] = float(identity_similarity(features, reference).mean())
    return result
