"""Blending a rendered face into a background frame, and measuring how visible the seam is.

The render covers the face (skin, and the mouth interior where the face model has one); hair,
body and backdrop come from a real frame. Pasting the render with its hard coverage mask leaves a
line where the render's colours meet the frame's, so the mask is feathered: shrunk by the feather
width, then blurred by it, so alpha rises from 0 at the render's edge to 1 inside and never
reaches pixels the render does not cover.

Feathering alone only spreads a colour step over the ramp: where the fitted light or albedo is off
near the face's edge, the render is darker or redder than the frame there and the ramp shows as a
rim. `match_colour` first pulls the render's low frequencies to the frame's in a band along the
face's outer edge, fading inwards, so the ramp joins two images of about the same colour; `blend`
does both.
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
    colour_band: float = 0.08
    """Depth of the band along the face's outer edge where the render's colour is compared with the
    frame's, as a fraction of the image side (20 px at 256); 0 turns colour matching off. The ramp
    plus about twice as much inside it, so the corrected colour does not stop where the render
    turns opaque; deep enough to reach skin past the hair and shadow at the very edge."""
    colour_spread: float = 0.01
    """Gaussian sigma of the correction field, as a fraction of the image side (2.5 px at 256; the
    field is computed on a grid of 4 px cells, so it varies no faster than that): it follows the
    shading error along the edge (a jaw darker than the cheek) but not the texture."""
    colour_tolerance: float = 2.0
    """Band pixels whose frame/render brightness ratio is more than this factor off the band's
    median are not compared: there the frame shows something other than the rendered skin (hair
    over the forehead, the neck's shadow past the jaw), and matching them would smear it into the
    face. The feather blends those edges, which the real frame has too."""

    def feather_pixels(self, image_size: int) -> float:
        return self.feather * image_size

    def __post_init__(self) -> None:
        if min(self.feather, self.colour_band) < 0 or self.colour_spread <= 0 or self.colour_tolerance <= 1:
            raise ValueError(f"need feather, colour_band >= 0, colour_spread > 0, colour_tolerance > 1: {self}")


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """Rendered (..., 3, H, W) float images in [0, 1] -> (..., H, W, 3) uint8, as frames are stored.

    Contiguous: OpenCV copies a strided array on every call, which costs as much as the work."""
    return (image.clamp(0, 1) * 255).round().byte().movedim(-3, -1).contiguous().cpu().numpy()


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


def edge_band(coverage: np.ndarray, depth_px: float) -> np.ndarray:
    """(H, W) uint8 0/1: the covered pixels within `depth_px` of the coverage's outer edge.

    Holes are filled first: the face's coverage has holes at the eyes (and at the mouth when the
    face model has no interior) where the frame shows through, and their borders are the frame's
    own eyes and lips, not a seam. The image border counts as an edge."""
    face = np.pad((np.asarray(coverage) > 0.5).astype(np.uint8), 1)
    cv2.floodFill(face, None, (0, 0), 2)  # the padding connects everything outside the face
    depth = cv2.distanceTransform((face != 2).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    return ((depth > 0) & (depth <= depth_px)).astype(np.uint8)


def match_colour(
    render: np.ndarray,
    background: np.ndarray,
    coverage: np.ndarray,
    band_px: float,
    spread_px: float,
    tolerance: float = 2.0,
) -> np.ndarray:
    """(H, W, 3) uint8 `render` with its colour matched to `background` at the coverage's edge.

    Per channel, a gain field: the ratio of the frame's to the render's local mean over the band
    within `band_px` of the face's outer edge (normalised convolution with a Gaussian of sigma
    `spread_px`, at a quarter of the resolution since the field is smooth anyway). It is the local
    ratio near the band and falls back to the band's overall ratio deeper inside, where the band
    says nothing. A gain rather than an offset keeps the render's shading contrast: a crease stays
    as much darker than the skin around it. Band pixels whose brightness ratio is more than
    `tolerance` times off the band's median are left out (see `CompositeConfig.colour_tolerance`).
    Pixels the render does not cover come back as they were; so does the whole render when no band
    pixel is left to compare."""
    if (
        render.ndim != 3
        or render.shape[2] != 3
        or render.shape != background.shape
        or render.shape[:2] != coverage.shape
    ):
        raise ValueError(
            f"render {render.shape}, background {background.shape} and coverage {coverage.shape} "
            "must be (H, W, 3), (H, W, 3) and (H, W)"
        )
    if render.dtype != np.uint8 or background.dtype != np.uint8:
        raise ValueError(f"render and background must be uint8, got {render.dtype} and {background.dtype}")
    render, background = np.ascontiguousarray(render), np.ascontiguousarray(background)  # see image_to_uint8
    band = edge_band(coverage, band_px)
    inside = band > 0
    if inside.any():
        # +1 keeps ratios finite on black pixels, here and in the gain below.
        grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[inside] + 1.0 for image in (background, render)]
        brightness = np.log(grey[0] / grey[1])
        band[inside] = np.abs(brightness - np.median(brightness)) < np.log(tolerance)
    if not band.any():
        return render.copy()
    height, width = band.shape
    small = (max(1, width // 4), max(1, height // 4))
    weight = cv2.resize(band.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    ours, theirs = (
        cv2.resize(cv2.bitwise_and(image, image, mask=band).astype(np.float32), small, interpolation=cv2.INTER_AREA)
        + weight[..., None]
        for image in (render, background)
    )
    overall = np.log(theirs.sum((0, 1)) / ours.sum((0, 1)))
    sigma = max(spread_px * small[0] / width, 0.5)
    local = np.log((cv2.GaussianBlur(theirs, (0, 0), sigma) + 1e-6) / (cv2.GaussianBlur(ours, (0, 0), sigma) + 1e-6))
    confidence = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    confidence /= confidence + 0.01
    gain = cv2.resize(
        np.exp(overall + confidence * (local - overall)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_LINEAR,
    )
    matched = cv2.multiply(render.astype(np.float32) + 1.0, gain) - 0.5  # undo the +1; +0.5 rounds below
    matched = np.clip(matched, 0, 255).astype(np.uint8)
    return cv2.copyTo(matched, (np.asarray(coverage) > 0.5).astype(np.uint8), render.copy())


def composite(render: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 `render` over `background` with (H, W) `alpha` (1 = render)."""
    if render.shape != background.shape or render.shape[:2] != alpha.shape:
        raise ValueError(f"render {render.shape}, background {background.shape} and alpha {alpha.shape} differ in size")
    a = alpha[..., None].astype(np.float32)
    blended = a * render.astype(np.float32) + (1.0 - a) * background.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def blend(
    render: np.ndarray, background: np.ndarray, coverage: np.ndarray, config: CompositeConfig = CompositeConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """(blended (H, W, 3) uint8, alpha (H, W) float32): `render` colour-matched to `background` at
    its edge (unless `config.colour_band` is 0), then composited with the feathered coverage.

    Sizes are fractions of the image's height (crops are square)."""
    side = coverage.shape[0]
    if config.colour_band > 0:
        render = match_colour(
            render,
            background,
            coverage,
            config.colour_band * side,
            config.colour_spread * side,
            config.colour_tolerance,
        )
    alpha = feathered_mask(coverage, config.feather_pixels(side))
    return composite(render, background, alpha), alpha


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
