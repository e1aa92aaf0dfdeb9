"""Blending a rendered face into a background frame, and measuring how visible the seam is.

The render covers the face (skin, and the mouth interior where the face model has one); hair,
body and backdrop come from a real frame. Pasting the render with its hard coverage mask leaves a
line where the render's colours meet the frame's, so the mask is feathered: shrunk by the feather
width, then blurred by it, so alpha rises from 0 at the render's edge to 1 inside and never
reaches pixels the render does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class CompositeConfig:
    feather: float = 0.03
    """Width of the alpha ramp at the render's edge, as a fraction of the image side (8 px at
    256): wide enough to hide a colour step between render and frame, narrow enough that the
    rendered mouth and eyes stay fully opaque."""

    def feather_pixels(self, image_size: int) -> float:
        return self.feather * image_size


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """A rendered (3, H, W) float image in [0, 1] -> (H, W, 3) uint8, as frames are stored."""
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def feathered_mask(coverage: np.ndarray, feather_px: float) -> np.ndarray:
    """(H, W) float32 alpha in [0, 1] from a (H, W) coverage mask (nonzero = rendered).

    Zero wherever the render does not cover, 1 deeper than about `feather_px` inside it."""
    covered = (np.asarray(coverage) > 0.5).astype(np.uint8)
    if feather_px <= 0:
        return covered.astype(np.float32)
    radius = max(1, int(round(feather_px / 2)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    core = cv2.erode(covered, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    alpha = cv2.GaussianBlur(core, (0, 0), sigmaX=feather_px / 4, borderType=cv2.BORDER_CONSTANT)
    # Blur spreads the core outwards too; clipping to the coverage keeps unrendered pixels out.
    return np.clip(alpha, 0.0, 1.0) * covered


def composite(render: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 `render` over `background` with (H, W) `alpha` (1 = render)."""
    if render.shape != background.shape or render.shape[:2] != alpha.shape:
        raise ValueError(f"render {render.shape}, background {background.shape} and alpha {alpha.shape} differ in size")
    a = alpha[..., None].astype(np.float32)
    blended = a * render.astype(np.float32) + (1.0 - a) * background.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """(H, W) Sobel gradient magnitude of the luminance of an (H, W, 3) uint8 image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))


def seam_visibility(image: np.ndarray, alpha: np.ndarray, inner_margin: int = 6) -> float:
    """Mean gradient magnitude along the paste boundary divided by that inside the face.

    The boundary is a 3-pixel band on the edge of `alpha` > 0.5 (the middle of a feathered ramp,
    the edge of a hard paste); the inside is that region shrunk by `inner_margin` pixels. About 1
    when the seam looks like the face's own texture; a hard paste of a face whose colours differ
    from the frame's scores several times that. NaN when the mask has no inside (too small to
    judge)."""
    covered = (np.asarray(alpha) > 0.5).astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    band = cv2.morphologyEx(covered, cv2.MORPH_GRADIENT, cross) > 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner_margin + 1, 2 * inner_margin + 1))
    inside = cv2.erode(covered, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    if not band.any() or not inside.any():
        return float("nan")
    gradient = gradient_magnitude(image)
    return float(gradient[band].mean() / max(float(gradient[inside].mean()), 1e-6))
