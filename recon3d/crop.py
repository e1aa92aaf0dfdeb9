"""The stable per-clip crop: one square region that holds the head in every frame.

Like Yi et al.'s fixed crop, the region does not move within a clip, so the head moves inside it
and later stages see the real head motion. `CropTransform` maps between frame pixels and crop
pixels (both continuous, pixel (i, j) covering [i, i+1) x [j, j+1)) and pastes results back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropTransform:
    """Square region [x0, x0 + side) x [y0, y0 + side) of the frame, resampled to size x size.

    The region may extend past the frame's border; those crop pixels are black.
    """

    x0: float
    y0: float
    side: float
    """Side of the region in frame pixels."""
    size: int
    """Side of the crop image in pixels."""
    frame_width: int
    frame_height: int

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return self.size / self.side

    def frame_to_crop(self, points: np.ndarray) -> np.ndarray:
        """(..., 2+) frame pixel coordinates -> crop pixel coordinates (extra coords scaled)."""
        out = np.array(points, dtype=np.float64) * self.scale
        out[..., 0] -= self.x0 * self.scale
        out[..., 1] -= self.y0 * self.scale
        return out

    def crop_to_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 2+) crop pixel coordinates -> frame pixel coordinates (extra coords scaled)."""
        out = np.array(points, dtype=np.float64) / self.scale
        out[..., 0] += self.x0
        out[..., 1] += self.y0
        return out

    def _matrix(self) -> np.ndarray:
        # cv2 puts pixel centres at integers, our coordinates at +0.5: u_crop = s (u + 0.5 - x0) - 0.5.
        s = self.scale
        return np.array([[s, 0.0, s * (0.5 - self.x0) - 0.5], [0.0, s, s * (0.5 - self.y0) - 0.5]])

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, C) frame -> (size, size, C) crop (area-averaged when shrinking)."""
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        return cv2.warpAffine(
            frame, self._matrix(), (self.size, self.size), flags=interp, borderMode=cv2.BORDER_CONSTANT
        )

    def paste(self, crop: np.ndarray, frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Puts a (size, size, C) crop back into a copy of `frame` at full resolution.

        `mask` (size, size) in [0, 1] blends crop over frame (1 = crop); without it the whole
        region is replaced. The input frame is not modified.
        """
        if mask is None:
            mask = np.ones(crop.shape[:2], np.float32)
        # Only the region's pixels (one more each side for interpolation) can change: warp into
        # that window rather than the whole frame.
        x0, y0 = max(0, int(np.floor(self.x0)) - 1), max(0, int(np.floor(self.y0)) - 1)
        x1 = min(self.frame_width, int(np.ceil(self.x0 + self.side)) + 1)
        y1 = min(self.frame_height, int(np.ceil(self.y0 + self.side)) + 1)
        out = frame.copy()
        if x1 <= x0 or y1 <= y0:
            return out
        inverse = cv2.invertAffineTransform(self._matrix())
        inverse[:, 2] -= (x0, y0)
        dsize = (x1 - x0, y1 - y0)
        back = cv2.warpAffine(crop, inverse, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(mask.astype(np.float32), inverse, dsize, flags=cv2.INTER_LINEAR)
        alpha = alpha.reshape(alpha.shape[:2] + (1,) * (frame.ndim - 2))
        window = frame[y0:y1, x0:x1].astype(np.float32)
        blended = alpha * back.astype(np.float32) + (1.0 - alpha) * window
        if frame.dtype == np.uint8:
            out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        else:
            out = out.astype(np.float32)
            out[y0:y1, x0:x1] = blended
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def stable_crop(
    boxes: np.ndarray, frame_width: int, frame_height: int, size: int = 256, scale: float = 1.8
) -> CropTransform:
    """The fixed square that holds every frame's face box, with room for hair, chin and motion.

    Args:
        boxes: (T, 4) per-frame x0, y0, x1, y1 face boxes (landmark boxes) in frame pixels.
        scale: region side as a multiple of the largest face box side; the region is also never
            smaller than the union of all boxes plus a 10% margin.
    """
    union = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
    centre = 0.5 * (union[:2] + union[2:])
    largest = float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
    side = max(scale * largest, 1.1 * float(np.max(union[2:] - union[:2])))
    # The face's box starts at the brows; shift up so the forehead and hair fit too.
    centre = centre - np.array([0.0, 0.08 * side])
    return CropTransform(
        x0=float(centre[0] - side / 2),
        y0=float(centre[1] - side / 2),
        side=float(side),
        size=int(size),
        frame_width=int(frame_width),
        frame_height=int(frame_height),
    )
