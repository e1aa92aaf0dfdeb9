import numpy as np

from recon3d.smoothing import SmoothingConfig, one_euro_filter, smooth_track

FPS = 25.0


def test_still_point_jitter_is_removed():
    rng = np.random.default_rng(0)
    points = 100.0 + rng.normal(0, 0.5, (200, 10, 2))  # 0.5 px noise, face 200 px
    smoothed = smooth_track(points, FPS, face_size=200.0)
    raw_jitter = np.abs(np.diff(points, axis=0)).mean()
    assert np.abs(np.diff(smoothed, axis=0)).mean() < raw_jitter / 4


def test_fast_motion_has_no_lag():
    # A fast head turn: 100 px (half a face) within 0.4 s.
    t = np.arange(100) / FPS
    x = 100.0 / (1.0 + np.exp(-(t - 2.0) * 15.0))
    points = np.stack([x, np.zeros_like(x)], axis=-1)[:, None, :]
    smoothed = smooth_track(points, FPS, face_size=200.0)[:, 0, 0]
    assert np.abs(smoothed - x).max() < 3.0  # < 1.5% of the face
    # The smoothed curve crosses the midpoint at the same frame (zero lag) ...
    assert np.argmin(np.abs(smoothed - 50)) == np.argmin(np.abs(x - 50))
    # ... while the causal filter alone trails behind it during the turn.
    causal = one_euro_filter(points / 200.0, FPS)[:, 0, 0] * 200.0
    turn = slice(40, 60)
    assert (causal[turn] <= x[turn] + 1e-9).all()
    assert np.abs(causal[turn] - x[turn]).mean() > 2 * np.abs(smoothed[turn] - x[turn]).mean()


def test_linear_motion_is_exact_and_shapes_kept():
    points = np.linspace(0, 50, 60)[:, None, None] * np.ones((60, 3, 2))
    smoothed = smooth_track(points.astype(np.float32), FPS, face_size=100.0, config=SmoothingConfig(min_cutoff=0.5))
    assert smoothed.shape == points.shape and smoothed.dtype == np.float32
    np.testing.assert_allclose(smoothed[5:-5], points[5:-5], atol=0.05)


def test_short_tracks_pass_through():
    points = np.ones((2, 4, 2))
    np.testing.assert_array_equal(smooth_track(points, FPS, 10.0), points)
