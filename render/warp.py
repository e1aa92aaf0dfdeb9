"""Moving a real frame's head to a new pose: a similarity transform applied near the face only.

In the "predicted" pose mode the rendered face follows the predicted head pose, while the
background frame shows the head where it was filmed. Warping the whole frame would shake the
backdrop like a moving camera; warping the face region alone would tear it at the region's edge.
So the frame is warped by the head's 2D similarity transform near the face, blending smoothly
into no motion at all `radius` away from it: head and hair move, the backdrop stays.
"""

from __future__ import annotations

import cv2
import numpy as np


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) rotation + uniform scale + translation taking (N, 2) `source` points closest to
    `target` in least squares (Umeyama's closed form, no reflection)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"need two (N, 2) point sets with N >= 2, got {source.shape} and {target.shape}")
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    variance = (s**2).sum() / len(s)
    if variance <= 0:
        raise ValueError("source points all coincide")
    covariance = t.T @ s / len(s)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / variance
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_t - matrix[:, :2] @ mu_s
    return matrix


def warp_near(image: np.ndarray, matrix: np.ndarray, center: tuple[float, float], radius: float) -> np.ndarray:
    """`image` with the content near `center` moved by the (2, 3) `matrix` (pixel coordinates,
    source -> destination): fully within radius/2 of the centre, fading (cos^2) to no motion at
    `radius`; pixels farther away are copied unchanged."""
    height, width = image.shape[:2]
    cx, cy = center
    x0, x1 = max(0, int(np.floor(cx - radius))), min(width, int(np.ceil(cx + radius)) + 1)
    y0, y1 = max(0, int(np.floor(cy - radius))), min(height, int(np.ceil(cy + radius)) + 1)
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    # Backward map: each output pixel samples the source where the inverse transform puts it.
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64)).astype(np.float32)
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    distance = np.hypot(xs - cx, ys - cy) / radius
    weight = np.cos(np.clip(2 * distance - 1, 0, 1) * (np.pi / 2)) ** 2
    map_x = xs + weight * (sx - xs)
    map_y = ys + weight * (sy - ys)
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out
