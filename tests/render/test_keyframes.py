import numpy as np
import pytest

from render.keyframes import (
    KeyframeConfig,
    coherent_path,
    hold_backgrounds,
    interpolate_indices,
    interpolate_positions,
    local_extrema,
    match_backgrounds,
    match_keyframes,
    select_keyframes,
    smooth_angle,
)

NO_SMOOTHING = KeyframeConfig(smooth_window=1)


def _poses(roll: np.ndarray) -> np.ndarray:
    """(T,) roll -> (T, 3) poses with zero pitch and yaw."""
    return np.stack([np.zeros_like(roll), np.zeros_like(roll), roll], axis=-1)


def _random_walk(num_frames: int, seed: int) -> np.ndarray:
    steps = np.random.default_rng(seed).normal(scale=0.5, size=(num_frames, 3))
    return np.cumsum(steps, axis=0)


def test_smoothing_keeps_constants_and_length():
    for length in (1, 2, 3, 7, 50):
        np.testing.assert_allclose(smooth_angle(np.full(length, -4.5), 7), np.full(length, -4.5))
    assert smooth_angle(np.arange(20.0), 7).shape == (20,)
    # A window of 1 (or 3: Hanning's end taps are zero) leaves the angle as it is.
    x = np.random.default_rng(0).normal(size=30)
    np.testing.assert_allclose(smooth_angle(x, 1), x)
    np.testing.assert_allclose(smooth_angle(x, 3), x)


def test_smoothing_known_examples():
    # Hanning(7) / 3 = [0, .25, .75, 1, .75, .25, 0] / 3: an impulse of 6 spreads into 6 x that.
    impulse = np.array([0.0, 0, 0, 6, 0, 0, 0])
    np.testing.assert_allclose(smooth_angle(impulse, 7), [0, 0.5, 1.5, 2, 1.5, 0.5, 0], atol=1e-12)
    # Hanning(5) / 2 = [0, .25, .5, .25, 0]; reflect padding makes [1, 2, 3] -> ..., 2, [1, 2, 3], 2, ...
    np.testing.assert_allclose(smooth_angle(np.array([1.0, 2, 3]), 5), [1.5, 2.0, 2.5])


def test_local_extrema_with_plateaus_and_ends():
    values = np.array([0.0, 1, 1, 1, 0, -2, -2, 0, 3, 3])
    # Plateau maximum 1..3 -> 2; plateau minimum 5..6 -> 5 (left middle); the raised end is no extremum.
    np.testing.assert_array_equal(local_extrema(values), [2, 5])
    np.testing.assert_array_equal(local_extrema(np.array([0.0, 2, -1, 4, 3])), [1, 2, 3])
    for flat in (np.zeros(10), np.arange(10.0), np.array([1.0]), np.array([1.0, 2.0])):
        assert local_extrema(flat).size == 0


def test_keyframes_at_sine_peaks_and_troughs():
    period, length = 40, 200
    t = np.arange(length)
    keyframes = select_keyframes(10 * np.sin(2 * np.pi * t / period))
    # Peaks at period / 4 + k period, troughs half a period later: 10 extrema, under the 20 allowed.
    expected = np.concatenate([[0], np.sort(np.r_[10:length:period, 30:length:period]), [length - 1]])
    assert keyframes.shape == expected.shape
    assert np.abs(keyframes - expected).max() <= 1
    assert keyframes.dtype.kind == "i"


def test_pruning_keeps_the_slow_swings_under_a_fast_wobble():
    t = np.arange(480)
    # The slow and fast waves peak together at 30 + 120 k and trough together 60 frames later; the
    # wobble's 120 extrema are far above the 48 allowed.
    phase = 2 * np.pi * (t - 30)
    roll = 10 * np.cos(phase / 120) + 2 * np.cos(phase / 8)
    keyframes = select_keyframes(roll)
    expected = np.concatenate([[0], np.arange(30, 480, 60), [479]])
    assert keyframes.shape == expected.shape
    assert np.abs(keyframes - expected).max() <= 1


def test_pruning_respects_the_keyframe_budget():
    for seed in range(5):
        roll = _random_walk(300, seed)[:, 2]
        keyframes = select_keyframes(roll)
        assert keyframes[0] == 0 and keyframes[-1] == 299
        assert len(keyframes) - 2 <= 30
        assert (np.diff(keyframes[1:-1]) >= 3).all()


def test_close_extrema_merge_to_the_larger_magnitude():
    roll = np.zeros(40)
    roll[[10, 12]] = [5.0, -8.0]  # a maximum and a minimum 2 frames apart
    np.testing.assert_array_equal(select_keyframes(roll, NO_SMOOTHING), [0, 12, 39])
    roll[14] = 9.0  # chains: 12 beats 10, then 14 beats 12
    np.testing.assert_array_equal(select_keyframes(roll, NO_SMOOTHING), [0, 14, 39])
    roll[14] = 0.0
    roll[13] = 6.0  # 13 is 1 frame after 12 and smaller: 12 stays
    np.testing.assert_array_equal(select_keyframes(roll, NO_SMOOTHING), [0, 12, 39])
    # min_gap = 1 merges nothing.
    np.testing.assert_array_equal(
        select_keyframes(roll, KeyframeConfig(smooth_window=1, min_gap=1)), [0, 10, 12, 13, 39]
    )


def test_matching_on_a_training_roll_ramp():
    training = _poses((np.arange(101) - 50) * 0.5)  # roll x sits at index 2 x + 50
    generated = _poses(np.array([3.0, 0, 0, 0, 0, -7.2, 0, 0, 0, 12.26]))
    matches = match_keyframes(np.array([0, 5, 9]), generated, training, KeyframeConfig(max_speed=100.0))
    np.testing.assert_array_equal(matches, [56, 36, 75])


def test_matching_uses_l1_over_all_three_angles():
    # L1 picks the second frame (1.8 < 2), L2 would pick the first (1.41 < 1.8).
    training = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.8]])
    assert match_keyframes(np.array([0]), np.zeros((1, 3)), training).tolist() == [1]


def test_matching_honours_the_search_window():
    training = _poses((np.arange(101) - 50) * 0.5)
    roll = np.zeros(4)
    roll[3] = 20.0  # best match 90, but 3 frames after a match at 50
    generated = _poses(roll)
    keyframes = np.array([0, 3])
    # max_speed 2 allows +-6 training frames: the nearest allowed is 56, not 90.
    np.testing.assert_array_equal(match_keyframes(keyframes, generated, training), [50, 56])
    np.testing.assert_array_equal(
        match_keyframes(keyframes, generated, training, KeyframeConfig(max_speed=10.0)), [50, 80]
    )
    np.testing.assert_array_equal(
        match_keyframes(keyframes, generated, training, KeyframeConfig(max_speed=20.0)), [50, 90]
    )


def test_interpolation_is_linear_between_matches():
    keyframes, matches = np.array([0, 4, 10]), np.array([10, 2, 8])
    indices = interpolate_indices(keyframes, matches, 11)
    np.testing.assert_array_equal(indices, [10, 8, 6, 4, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(indices[keyframes], matches)
    np.testing.assert_allclose(interpolate_positions(np.array([0, 3]), np.array([0, 1]), 4), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(interpolate_indices(np.array([0, 3]), np.array([0, 1]), 4), [0, 0, 1, 1])
    # Halves round to even, as Python's round in the official code.
    np.testing.assert_array_equal(interpolate_indices(np.array([0, 2]), np.array([0, 1]), 3), [0, 0, 1])
    with pytest.raises(ValueError, match="start at 0"):
        interpolate_indices(np.array([1, 3]), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match="matches"):
        interpolate_indices(np.array([0, 3]), np.array([0, 1, 2]), 4)


def test_match_backgrounds_end_to_end():
    rng = np.random.default_rng(3)
    t = np.arange(150)
    generated = _poses(8 * np.sin(2 * np.pi * t / 45)) + rng.normal(scale=0.3, size=(150, 3))
    training = _random_walk(250, seed=4)
    config = KeyframeConfig()
    result = match_backgrounds(generated, training, config)
    assert result.indices.shape == (150,) and result.positions.shape == (150,)
    assert result.keyframes[0] == 0 and result.keyframes[-1] == 149
    np.testing.assert_array_equal(result.keyframes, select_keyframes(generated[:, 2], config))
    np.testing.assert_array_equal(result.indices[result.keyframes], result.matches)
    assert result.indices.min() >= 0 and result.indices.max() < 250
    # The search window bounds how fast the background plays.
    assert np.abs(np.diff(result.positions)).max() <= config.max_speed
    np.testing.assert_array_equal(result.reassigned_pose(training), training[result.indices])
    with pytest.raises(ValueError, match="frames"):
        result.reassigned_pose(training[:1])


def test_replaying_the_training_video_maps_every_frame_to_itself():
    poses = _random_walk(120, seed=5)
    result = match_backgrounds(poses, poses)
    np.testing.assert_array_equal(result.indices, np.arange(120))
    np.testing.assert_array_equal(result.reassigned_pose(poses), poses)


def test_single_frame_output_and_training():
    training = _poses(np.linspace(-10, 10, 41))
    single = match_backgrounds(_poses(np.array([2.5])), training)
    np.testing.assert_array_equal(single.keyframes, [0])
    np.testing.assert_array_equal(single.indices, [25])
    one_frame_training = match_backgrounds(_random_walk(30, seed=6), training[:1])
    np.testing.assert_array_equal(one_frame_training.indices, np.zeros(30))
    two = match_backgrounds(_poses(np.array([-10.0, 10.0])), training)
    np.testing.assert_array_equal(two.indices, [0, 2])  # keyframes 1 apart: the window allows +-2


@pytest.mark.parametrize(
    ("generated", "training", "message"),
    [
        (np.zeros((10, 2)), np.zeros((5, 3)), "generated_degrees must have shape"),
        (np.zeros(10), np.zeros((5, 3)), "generated_degrees must have shape"),
        (np.zeros((0, 3)), np.zeros((5, 3)), "generated_degrees must have shape"),
        (np.zeros((10, 3)), np.zeros((5, 4)), "training_degrees must have shape"),
        (np.zeros((10, 3)), np.zeros((0, 3)), "training_degrees must have shape"),
        (np.full((10, 3), np.nan), np.zeros((5, 3)), "generated_degrees must be finite"),
        (np.zeros((10, 3)), np.full((5, 3), np.inf), "training_degrees must be finite"),
    ],
)
def test_bad_poses_raise(generated, training, message):
    with pytest.raises(ValueError, match=message):
        match_backgrounds(generated, training)


def test_bad_settings_and_keyframes_raise():
    with pytest.raises(ValueError, match="odd"):
        smooth_angle(np.zeros(10), 4)
    with pytest.raises(ValueError, match="angle must have shape"):
        smooth_angle(np.zeros((3, 3)), 7)
    for bad in ({"smooth_window": 6}, {"max_fraction": 0.0}, {"min_gap": 0}, {"max_speed": 0.0}):
        with pytest.raises(ValueError):
            KeyframeConfig(**bad)
    poses = np.zeros((10, 3))
    with pytest.raises(ValueError, match="increase strictly"):
        match_keyframes(np.array([0, 5, 5]), poses, poses)
    with pytest.raises(ValueError, match="increase strictly"):
        match_keyframes(np.array([0, 10]), poses, poses)
    with pytest.raises(ValueError, match="integer"):
        match_keyframes(np.array([0.0, 5.0]), poses, poses)


def test_held_backgrounds_hold_still_heads_and_play_on_with_moving_ones():
    training = _random_walk(80, seed=3)
    still = np.repeat(training[[40]] + 0.3, 30, axis=0)
    held = hold_backgrounds(still, training)
    assert len(set(held.tolist())) == 1 and np.abs(training[held[0]] - still[0]).sum() < 1.0
    # Output poses that replay the training video from frame 10 are matched to it, frame by frame.
    np.testing.assert_array_equal(hold_backgrounds(training[10:60], training), np.arange(10, 60))
    # A cut is taken only where it pays: poses far from the current frame for long enough.
    jump = np.concatenate([np.repeat(training[[5]], 10, 0), np.repeat(training[[70]], 10, 0)])
    path = hold_backgrounds(jump, training, switch_degrees=1.0)
    assert (path[:10] == 5).all() and (path[10:] == 70).all()
    # Without cuts, it holds or plays on toward the nearer poses, never backward or faster.
    uncut = hold_backgrounds(jump, training, switch_degrees=1e9)
    assert uncut[0] == 5 and set(np.diff(uncut).tolist()) <= {0, 1}
    assert len(coherent_path([], 1.0)) == 0
