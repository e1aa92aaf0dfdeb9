"""Blink and gaze timing: measurement of blinks, the learned rate, and the planned eyes."""

from __future__ import annotations

import numpy as np
import pytest

from audio2pose.blinks import (
    PRIOR_RATE,
    RATE_RANGE,
    BlinkConfig,
    BlinkStats,
    blink_stats,
    eye_openness,
    eye_scores,
    find_blinks,
    plan_blinks,
    plan_eyes,
    plan_gaze,
    runs,
    speech_pauses,
)

FPS = 25.0


def eyes_with_openness(openness: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks whose eyes are 30 px wide with lids `openness` x 30 px apart."""
    points = np.zeros((len(openness), 68, 2))
    for x0, ids in ((100.0, range(36, 42)), (160.0, range(42, 48))):
        corner, up1, up2, corner2, low1, low2 = ids
        points[:, corner] = (x0, 50)
        points[:, corner2] = (x0 + 30, 50)
        half = 15 * openness
        points[:, up1, 0], points[:, up2, 0] = x0 + 10, x0 + 20
        points[:, low2, 0], points[:, low1, 0] = x0 + 10, x0 + 20
        points[:, up1, 1] = points[:, up2, 1] = 50 - half
        points[:, low1, 1] = points[:, low2, 1] = 50 + half
    return points


def test_eye_openness_is_the_lid_gap_over_the_width():
    openness = np.array([0.3, 0.15, 0.0])
    assert np.allclose(eye_openness(eyes_with_openness(openness)), openness)


def test_runs_and_blinks_are_found_where_the_eye_closes():
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
    openness = np.full(250, 0.3)
    openness[[50, 51, 52, 120, 121]] = 0.05
    assert find_blinks(openness) == [(50, 53), (120, 122)]


def test_eye_scores_tell_blinks_from_a_held_half_closed_eye():
    openness = np.full(1500, 0.3)  # one minute
    for start in range(100, 1500, 250):  # 6 blinks of 3 frames
        openness[start : start + 3] = 0.05
    scores = eye_scores(openness, FPS)
    assert scores["blink_rate"] == pytest.approx(6) and scores["blink_ms"] == pytest.approx(120)
    assert scores["half_closed_ms"] == pytest.approx(120) and scores["eye_steps"] == 0
    openness[400:420] = 0.18  # 0.8 s at 60% of open: sleepy, and stepped into and out of
    scores = eye_scores(openness, FPS)
    assert scores["half_closed_ms"] == pytest.approx(800) and scores["eye_steps"] == 2


def test_the_actors_rate_is_learned_and_a_photo_takes_the_prior():
    openness = np.full(750, 0.3)  # 30 s, 10 blinks of 2 frames
    for start in range(30, 750, 75):
        openness[start : start + 2] = 0.03
    stats = blink_stats(eyes_with_openness(openness), FPS)
    assert stats.source == "footage" and stats.rate == pytest.approx(20) and stats.frames == 2
    photo = blink_stats(eyes_with_openness(np.array([0.3])), FPS)
    assert photo.source == "prior" and photo.rate == PRIOR_RATE
    openness[::7] = 0.02  # squints every 0.28 s: the learned rate is kept in range
    assert blink_stats(eyes_with_openness(openness), FPS).rate == RATE_RANGE[1]


def test_planned_blinks_have_the_rate_and_duration_asked_and_repeat_with_the_seed():
    stats = BlinkStats(rate=20.0, frames=3.0, gaze=0.03, source="footage")
    pauses = np.zeros(25 * 600, bool)  # ten minutes of speech
    closure = plan_blinks(pauses, FPS, stats)
    blinks = runs(closure > 0.5)
    assert 180 <= len(blinks) <= 220
    assert {end - start for start, end in blinks} == {3}
    assert np.array_equal(closure, plan_blinks(pauses, FPS, stats))
    assert not np.array_equal(closure, plan_blinks(pauses, FPS, stats, BlinkConfig(seed=1)))
    assert len(runs(plan_blinks(pauses, FPS, stats, BlinkConfig(blinks="40")) > 0.5)) > 360
    starts = np.array([start for start, _ in blinks])
    assert np.diff(starts).min() >= BlinkConfig().min_interval * FPS


def test_blinks_prefer_the_pauses():
    stats = BlinkStats(rate=20.0, frames=2.0, gaze=0.03, source="prior")
    pauses = (np.arange(25 * 600) % 100) < 20  # a fifth of the time
    starts = np.array([start for start, _ in runs(plan_blinks(pauses, FPS, stats) > 0)])
    assert pauses[starts].mean() > 0.35


def test_pauses_are_the_quiet_stretches_of_the_speech():
    rng = np.random.default_rng(0)
    audio = 0.3 * rng.standard_normal(16000 * 3).astype(np.float32)
    audio[16000:24000] *= 1e-3  # 0.5 s of near silence
    pauses = speech_pauses(audio, 16000, 75, FPS)
    assert pauses[27:36].all() and not pauses[:24].any() and not pauses[40:].any()


def test_gaze_holds_fixations_and_blinks_off_draws_nothing():
    stats = BlinkStats(rate=20.0, frames=3.0, gaze=0.03, source="prior")
    gaze = plan_gaze(25 * 60, FPS, stats)
    assert np.abs(gaze).max() <= 0.2 and 10 <= len(runs(np.diff(gaze) != 0)) <= 200
    assert np.array_equal(gaze, plan_gaze(25 * 60, FPS, stats))
    audio = np.zeros(16000, np.float32)
    assert plan_eyes(audio, 16000, 25, FPS, stats, BlinkConfig(blinks="off")) is None
    closure, gaze = plan_eyes(audio, 16000, 25, FPS, stats, BlinkConfig())
    assert closure.shape == gaze.shape == (25,)


@pytest.mark.parametrize("blinks", ["sometimes", "-1", "nan", "500"])
def test_bad_blink_settings_are_refused(blinks):
    with pytest.raises(ValueError, match="blinks are auto, off or a number"):
        BlinkConfig(blinks=blinks)
    assert (
        BlinkConfig(blinks="12.5").rate == 12.5 and BlinkConfig().rate is None and BlinkConfig(blinks="off").rate == 0
    )
