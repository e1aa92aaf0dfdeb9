"""Feathered face masks, colour matching at the seam, alpha compositing and the seam visibility measure."""

import cv2
import numpy as np
import pytest

from render.composite import (
    CompositeConfig,
    blend,
    composite,
    edge_band,
    feathered_mask,
    match_colour,
    seam_visibility,
)


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


def face_and_frame(size: int = 128, gain=(0.55, 0.7, 0.85)) -> tuple[np.ndarray, np.ndarray]:
    """A frame, and a face whose own texture is a per-channel gain darker than the frame's."""
    frame = textured(size, 1, 170.0)
    face = np.clip(textured(size, 0, 170.0) * np.float32(gain), 0, 255).astype(np.uint8)
    return face, frame


def test_match_colour_removes_a_colour_step_at_the_edge():
    size = 128
    face, frame = face_and_frame(size)
    shading = np.linspace(0.7, 1.0, size, dtype=np.float32)[None, :, None]  # the left side darker
    face = (face * shading).astype(np.uint8)
    coverage = disk(size)
    config = CompositeConfig()
    plain = feathered_mask(coverage, config.feather_pixels(size))
    before = seam_visibility(composite(face, frame, plain), plain)
    blended, alpha = blend(face, frame, coverage, config)
    after = seam_visibility(blended, alpha)
    assert before > 2.0 and after < 1.3, (before, after)
    matched = match_colour(face, frame, coverage, config.colour_band * size, config.colour_spread * size)
    for side in (slice(0, 48), slice(80, size)):  # the colour is met all round the edge
        ring = np.zeros_like(coverage, bool)
        ring[:, side] = edge_band(coverage, 6)[:, side] > 0
        np.testing.assert_allclose(matched[ring].mean(0), frame[ring].mean(0), atol=3)
    np.testing.assert_array_equal(blended, composite(matched, frame, alpha))
    np.testing.assert_array_equal(alpha, plain)


def test_match_colour_keeps_the_detail_inside():
    size = 128
    face, frame = face_and_frame(size)
    yy, xx = np.mgrid[:size, :size]
    checker = ((yy // 2 + xx // 2) % 2 == 1) & (np.hypot(yy - 64, xx - 64) < 12)
    face[checker] //= 2  # 2-pixel detail in the middle, like teeth or an eyelid
    coverage = disk(size)
    matched = match_colour(face, frame, coverage, 12, 2.5).astype(np.float32)
    centre = np.hypot(yy - 64, xx - 64) < 12
    gain = matched[centre & ~checker].mean(0) / face[centre & ~checker].mean(0)
    assert np.all(gain > 1.1)  # the colour was corrected in the middle too ...
    np.testing.assert_allclose(matched[checker].mean(0) / face[checker].mean(0), gain, rtol=0.05)
    contrast = matched[checker].mean(0) / matched[centre & ~checker].mean(0)
    np.testing.assert_allclose(contrast, 0.5, atol=0.03)  # ... and the pattern kept its contrast


def test_match_colour_leaves_uncovered_pixels_alone_and_ignores_holes_and_outliers():
    size = 128
    face, frame = face_and_frame(size, gain=(1.0, 1.0, 1.0))
    face[disk(size, 41) == 0] = 7  # whatever the renderer leaves outside
    coverage = disk(size)
    cv2.circle(coverage, (64, 64), 8, 0.0, -1)  # an eye: the frame shows through
    frame[disk(size, 8) > 0] = 255
    frame[:40] = 10  # dark hair over the top of the face
    matched = match_colour(face, frame, coverage, 12, 2.5)
    np.testing.assert_array_equal(matched[coverage == 0], face[coverage == 0])
    # Same colour as the frame where the frame shows skin: neither the white eye nor the hair
    # leaks into the face (without the tolerance the hair would darken the forehead).
    skin = (disk(size, 30) > 0) & (disk(size, 12) == 0)
    np.testing.assert_allclose(matched[skin].astype(float).mean(0), face[skin].mean(0), atol=4)
    forehead = skin & (np.mgrid[:size, :size][0] < 50)
    smeared = match_colour(face, frame, coverage, 12, 2.5, tolerance=100.0)
    assert smeared[forehead].mean() < face[forehead].mean() - 20
    assert not edge_band(coverage, 3)[disk(size, 20) > 0].any()  # the eye's rim is no edge


def test_match_colour_validates_and_passes_empty_coverage_through():
    face, frame = face_and_frame(32)
    np.testing.assert_array_equal(match_colour(face, frame, np.zeros((32, 32)), 4, 2), face)
    with pytest.raises(ValueError, match="must be"):
        match_colour(face, frame[:16], disk(32, 10), 4, 2)
    with pytest.raises(ValueError, match="must be"):
        match_colour(face[..., 0], frame[..., 0], disk(32, 10), 4, 2)
    with pytest.raises(ValueError, match="uint8"):
        match_colour(face.astype(np.float32), frame, disk(32, 10), 4, 2)
    with pytest.raises(ValueError):
        CompositeConfig(colour_tolerance=1.0)
    plain, alpha = blend(face, frame, disk(32, 10), CompositeConfig(colour_band=0))
    np.testing.assert_array_equal(plain, composite(face, frame, alpha))
