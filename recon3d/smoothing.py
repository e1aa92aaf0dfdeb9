"""Temporal smoothing of landmark tracks: removes jitter on still faces without lag on fast motion.

The One-Euro filter (Casiez et al., CHI 2012) is a first-order low-pass whose cutoff rises with
the signal's speed: a low cutoff when the face is still (jitter goes), a high one when it moves
(no lag). Because whole clips are available, `smooth_track` runs it forward and backward and
averages the two, which cancels the remaining phase lag (a linear ramp comes out exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SmoothingConfig:
    min_cutoff: float = 1.0
    """Cutoff (Hz) when a point is still; lower removes more jitter."""
    beta: float = 20.0
    """Cutoff increase (Hz) per unit speed (speed in face sizes per second)."""
    d_cutoff: float = 2.0
    """Cutoff (Hz) of the low-pass on the speed estimate."""


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau * fps)


def one_euro_filter(points: np.ndarray, fps: float, config: SmoothingConfig = SmoothingConfig()) -> np.ndarray:
    """Causal One-Euro filter along axis 0.

    Args:
        points: (T, N, C) tracks of N points with C coordinates, in units where speed (units per
            second) matches `config.beta` (see `smooth_track`, which divides by the face size).
        fps: frames per second of the track.

    Returns:
        (T, N, C) filtered tracks. Each point's C coordinates share one cutoff, taken from the
        norm of its velocity, so a point is smoothed the same way in x and y.
    """
    out = np.empty_like(points, dtype=np.float64)
    x_hat = points[0].astype(np.float64)
    dx_hat = np.zeros_like(x_hat)
    out[0] = x_hat
    a_d = _alpha(config.d_cutoff, fps)
    for t in range(1, len(points)):
        x = points[t].astype(np.float64)
        dx_hat = a_d * (x - x_hat) * fps + (1.0 - a_d) * dx_hat
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)  # (N, 1)
        a = _alpha(config.min_cutoff + config.beta * speed, fps)
        x_hat = a * x + (1.0 - a) * x_hat
        out[t] = x_hat
    return out


def smooth_track(
    points: np.ndarray, fps: float, face_size: float, config: SmoothingConfig = SmoothingConfig()
) -> np.ndarray:
    """Zero-lag smoothing of (T, N, C) landmark tracks in pixels.

    `face_size` (pixels) makes the filter scale-free: the same settings work for a 224 px and a
    4K face. Forward and backward passes are averaged so fast motion keeps its timing.
    """
    if len(points) < 3:
        return points.copy()
    scaled = points / face_size
    forward = one_euro_filter(scaled, fps, config)
    backward = one_euro_filter(scaled[::-1], fps, config)[::-1]
    return (0.5 * (forward + backward) * face_size).astype(points.dtype)
