"""Brow raises: the face model's brow direction, the actor's raises, and raises on emphasis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio2pose.brows import (
    PRIOR_RATE,
    BrowStats,
    brow_direction,
    brow_heights,
    brow_stats,
    emphasis,
    plan_brows,
    raise_profile,
)
from recon3d.facemodels import load_face_model

FPS = 25.0


def test_the_brow_direction_lifts_the_brows_and_little_else():
    model = load_face_model("builtin")
    direction = torch.from_numpy(brow_direction(model, lift=0.1))[None]
    zeros = torch.zeros(1, model.layout.id_dim)
    before = model.landmarks(model.shape(zeros, torch.zeros_like(direction)))[0].numpy()
    after = model.landmarks(model.shape(zeros, direction))[0].numpy()
    eyes = np.linalg.norm(before[36] - before[45])
    moved = np.abs(after - before) / eyes
    assert (after - before)[17:27, 1].mean() / eyes > 0.07  # up (model space, y up)
    assert moved[48:68].mean() < 0.01 and moved[0:17].mean() < 0.01


def brows_at(heights: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks: eyes 100 px apart on y = 100, brows `heights` x 100 px above."""
    points = np.zeros((len(heights), 68, 2))
    points[:, 36:42] = (100, 100)
    points[:, 42:48] = (200, 100)
    points[:, 45, 0] = 200
    points[:, 36, 0] = 100
    points[:, 17:27, 1] = 100 - 100 * heights[:, None]
    return points


def test_the_actors_raises_are_counted_from_its_tracked_brows():
    heights = np.full(750, 0.4)  # 30 s
    for start in range(40, 750, 150):  # 5 raises of 0.05
        heights[start : start + 8] += 0.05
    measured = brow_heights(brows_at(heights))
    assert np.allclose(measured, heights)
    stats = brow_stats(measured, FPS)
    assert stats.source == "footage" and stats.rate == pytest.approx(10) and stats.height == pytest.approx(0.05)
    still = brow_stats(brow_heights(brows_at(np.full(750, 0.4))), FPS)
    assert still.source == "prior" and still.rate == PRIOR_RATE


def test_raises_fall_on_the_emphasised_syllables():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 6) / 16000
    # A voice at 120 Hz, its syllables every 0.25 s; at 2 s and 4.5 s louder and at 200 Hz.
    f0 = np.where((np.abs(t - 2.0) < 0.1) | (np.abs(t - 4.5) < 0.1), 200.0, 120.0)
    envelope = 0.3 + 0.2 * (np.sin(2 * np.pi * 4 * t) > 0) + 0.5 * (f0 > 150)
    audio = (envelope * np.sin(2 * np.pi * np.cumsum(f0) / 16000) + 0.001 * rng.standard_normal(len(t))).astype(
        np.float32
    )
    score = emphasis(audio, 16000, 150, FPS)
    lift = plan_brows(score, FPS, BrowStats(rate=20.0, height=0.04, source="footage"))
    raised = np.flatnonzero(lift >= 0.04 - 1e-6)
    assert len(raised) and all(min(abs(f / FPS - 2.0), abs(f / FPS - 4.5)) < 0.35 for f in raised)
    assert lift.max() == pytest.approx(0.04) and lift[:25].max() == 0


def test_a_raise_rises_holds_and_falls():
    profile = raise_profile(FPS)
    assert profile.max() == 1 and profile[0] < 0.5 and profile[-1] < 0.1
    top = np.flatnonzero(profile == 1)
    assert np.all(np.diff(profile[: top[0] + 1]) > 0) and np.all(np.diff(profile[top[-1] :]) < 0)
