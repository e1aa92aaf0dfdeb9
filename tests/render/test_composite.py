"""Feathered face masks, alpha compositing and the seam visibility measure."""

import cv2
import numpy as np
import pytest

from render.composite import CompositeConfig, composite, feathered_mask, seam_visibility


def disk(size: int = 128, radius: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    cv2.circle(mask, (size // 2, size // 2), radius, 1.0, -1)
    return mask


def textured(size: int, seed: int, level: float) -> np.ndarray:
    """Smooth random texture around `level` (like skin or a wall, not flat)."""
    noise = np.random.default_rng(seed).normal(0, 25, (size, size, 3)).astype(np.float32)
    return np.clip(level + cv2.GaussianBlur(noise, (0, 0), 1.5), 0, 255).astype(np.uint8)


def test_feathered_mask_stays_inside_the_coverage_and_is_opaque_in_the_middle():
    coverage = disk()
    alpha = feathered_mask(coverage, CompositeConfig().feather_pixels(128))
    assert alpha.dtype == np.float32 and alpha.shape == coverage.shape
    assert alpha[coverage == 0].max() == 0
    assert alpha[64, 64] == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    row = alpha[64, 64:]  # from the centre outwards the ramp only falls
    assert np.all(np.diff(row) <= 1e-6)
    ramp = ((alpha > 0.01) & (alpha < 0.99)).sum()
    assert ramp > 2 * np.pi * 40  # a band of more than one pixel all around
    np.testing.assert_array_equal(feathered_mask(coverage, 0), coverage)


def test_composite_takes_the_render_where_alpha_is_one_and_the_frame_where_it_is_zero():
    render = np.full((8, 8, 3), 200, np.uint8)
    background = np.full((8, 8, 3), 10, np.uint8)
    alpha = np.zeros((8, 8), np.float32)
    alpha[:, 4:] = 1.0
    alpha[:, 3] = 0.5
    out = composite(render, background, alpha)
    assert (out[:, 4:] == 200).all() and (out[:, :3] == 10).all() and (out[:, 3] == 105).all()
    with pytest.raises(ValueError, match="differ in size"):
        composite(render, background[:4], alpha)


def test_seam_visibility_falls_as_the_feather_widens():
    size = 128
    face, frame = textured(size, 0, 170.0), textured(size, 1, 90.0)
    coverage = disk(size)
    hard = composite(face, frame, coverage)
    scores = [seam_visibility(hard, coverage)]
    for feather in (4, 8, 16):  # a colour step spread over a wider ramp shows less
        alpha = feathered_mask(coverage, feather)
        scores.append(seam_visibility(composite(face, frame, alpha), alpha))
    assert scores[0] > 3.0
    assert all(b < 0.8 * a for a, b in zip(scores, scores[1:])), scores
    same = composite(face, textured(size, 1, 170.0), coverage)  # no colour step: no seam
    assert seam_visibility(same, coverage) < 1.6
    assert np.isnan(seam_visibility(hard, disk(size, 3)))
