"""Keyframe background matching: which training-video frame lends each output frame its background.

The renderer only draws the face; hair, body and backdrop come from a real frame of the actor's
training video. That frame must have about the same head pose as the output frame, and the chosen
frames must play smoothly (a background that jumps around reads as a cut). Yi et al. (2020,
"Audio-driven talking face video generation with learning-based personalized head pose"; official
code: `Audio/code/choose_bg_gexinghua2_reassign.py`) solve this with keyframes:

1. Smooth the output roll angle with a normalised Hanning window of 7 (reflect padding).
2. Keyframes are the local extrema of the smoothed roll: where the head turns back.
3. When there are more than N/10 (N output frames), keep "extrema of extrema": the maxima that are
   local maxima among the maxima, the minima that are local minima among the minima, repeated until
   at most N/10 remain. Fast wobbles go, the slow swings stay.
4. Keyframes fewer than 3 frames apart are merged, keeping the larger |smoothed roll|.
5. The first and last frames are keyframes too.
6. Each keyframe is matched to the training frame with the smallest L1 distance over
   (pitch, yaw, roll). The first searches the whole video; each later one only frames within
   `max_speed` times its distance (in output frames) from the previous keyframe's match, so the
   background never has to play faster than that.
7. Between keyframes the training index is interpolated linearly and rounded, so the background
   plays forward or backward smoothly from one match to the next.

Downstream the pose comes in two modes: Yi et al.'s "reassign" replaces each output pose by the pose
of its background frame (`BackgroundMatch.reassigned_pose`), so face and background agree exactly;
"predicted" keeps the predicted pose and warps the background to follow it. The choice is the
caller's. Angles are (pitch, yaw, roll) in degrees throughout; the L1 argmin does not depend on the
unit, so the official code's radians pick the same frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

ROLL = 2
"""Column of the roll angle in (pitch, yaw, roll) poses."""


@dataclass(frozen=True)
class KeyframeConfig:
    """Settings of the keyframe selection and matching (defaults: Yi et al.'s official code)."""

    smooth_window: int = 7
    """Hanning window length (odd) for the roll before looking for extrema: frame-to-frame jitter
    in the predicted pose would otherwise make every other frame an extremum."""
    max_fraction: float = 0.1
    """Keyframes allowed per output frame (at least 1 in all): each keyframe pins the background
    to a new match, so too many make it hop back and forth instead of playing."""
    min_gap: int = 3
    """Keyframes closer than this (frames) are merged: a match that holds for one or two frames
    only shows as a flicker of the background."""
    max_speed: float = 2.0
    """Each later keyframe searches training frames within `max_speed` x its distance from the
    previous keyframe around the previous match, so the interpolated background plays at most this
    many training frames per output frame (2: the official code's `speed`)."""

    def __post_init__(self) -> None:
        if self.smooth_window < 1 or self.smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be a positive odd integer, got {self.smooth_window}")
        if not 0.0 < self.max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in (0, 1], got {self.max_fraction}")
        if self.min_gap < 1:
            raise ValueError(f"min_gap must be >= 1, got {self.min_gap}")
        if not self.max_speed > 0.0:
            raise ValueError(f"max_speed must be > 0, got {self.max_speed}")


@dataclass(frozen=True, eq=False)  # eq=False: == on array fields has no single truth value
class BackgroundMatch:
    """Background frames for an output sequence of T_out frames (training frames indexed from 0)."""

    keyframes: np.ndarray
    """(K,) int output frames that were matched, increasing, first 0 and last T_out - 1."""
    matches: np.ndarray
    """(K,) int training frame matched to each keyframe."""
    positions: np.ndarray
    """(T_out,) float training-video position per output frame, linear between matches (for
    callers that blend neighbouring frames)."""
    indices: np.ndarray
    """(T_out,) int training frame per output frame: `positions` rounded."""

    def reassigned_pose(self, training_degrees: np.ndarray) -> np.ndarray:
        """(T_out, 3) poses of the background frames: Yi et al.'s "reassign" pose mode."""
        training = _check_poses(training_degrees, "training_degrees")
        if self.indices.max() >= len(training):
            raise ValueError(
                f"training_degrees has {len(training)} frames but the match uses frame {self.indices.max()}"
            )
        return training[self.indices]


def smooth_angle(angle: np.ndarray, window: int) -> np.ndarray:
    """(T,) angle -> (T,) angle convolved with a normalised Hanning window of odd length `window`.

    The ends are reflect-padded as in the official code, so a constant stays constant and the ends
    are not pulled toward zero; shorter sequences than the window reflect repeatedly.
    """
    values = _check_series(angle, "angle")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    kernel = np.hanning(window)
    kernel /= kernel.sum()
    padded = np.pad(values, window // 2, mode="reflect")
    return np.convolve(padded, kernel, mode="valid")


def local_extrema(values: np.ndarray) -> np.ndarray:
    """Sorted indices of the local maxima and minima of a (T,) sequence.

    A plateau (equal neighbouring values) that is higher or lower than both sides counts once, at
    its middle (the left one of two middles). The ends are never extrema: they have one neighbour.
    """
    values = _check_series(values, "values")
    return np.sort(np.concatenate([_local_maxima(values), _local_maxima(-values)]))


def select_keyframes(roll_degrees: np.ndarray, config: KeyframeConfig = KeyframeConfig()) -> np.ndarray:
    """(T,) output roll in degrees -> sorted unique keyframe indices, including 0 and T - 1."""
    roll = _check_series(roll_degrees, "roll_degrees")
    smoothed = smooth_angle(roll, config.smooth_window)
    maxima, minima = _local_maxima(smoothed), _local_maxima(-smoothed)
    limit = max(1.0, config.max_fraction * len(roll))
    # Maxima are pruned among maxima and minima among minima: in the alternating sequence of
    # extrema every maximum is trivially above its neighbouring minima (hence the official code's
    # argrelextrema order=2, which reaches the neighbouring maxima). The outermost maximum and
    # minimum never survive a pass, so the count falls every time and the loop ends.
    while maxima.size + minima.size > limit:
        maxima = maxima[_local_maxima(smoothed[maxima])]
        minima = minima[_local_maxima(-smoothed[minima])]
    extrema = np.sort(np.concatenate([maxima, minima]))
    kept = _merge_close(extrema, np.abs(smoothed), config.min_gap)
    return np.unique(np.concatenate([[0], kept, [len(roll) - 1]]))


def match_keyframes(
    keyframes: np.ndarray,
    generated_degrees: np.ndarray,
    training_degrees: np.ndarray,
    config: KeyframeConfig = KeyframeConfig(),
) -> np.ndarray:
    """(K,) training frame per keyframe: the smallest L1 pose distance, each later keyframe searching
    within `config.max_speed` x (keyframe distance) of the previous match.

    Args:
        keyframes: (K,) increasing output frame indices.
        generated_degrees: (T_out, 3) output (pitch, yaw, roll) in degrees.
        training_degrees: (T_train, 3) training-video (pitch, yaw, roll) in degrees.
    """
    generated = _check_poses(generated_degrees, "generated_degrees")
    training = _check_poses(training_degrees, "training_degrees")
    keyframes = _check_keyframes(keyframes, len(generated))
    cost = np.abs(generated[keyframes, None, :] - training[None, :, :]).sum(axis=-1)  # (K, T_train)
    matches = np.empty(len(keyframes), dtype=np.int64)
    matches[0] = np.argmin(cost[0])
    for i in range(1, len(keyframes)):
        radius = int(config.max_speed * (keyframes[i] - keyframes[i - 1]))
        low = max(0, matches[i - 1] - radius)
        high = min(len(training), matches[i - 1] + radius + 1)
        matches[i] = low + np.argmin(cost[i, low:high])
    return matches


def interpolate_positions(keyframes: np.ndarray, matches: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) float training position per output frame, linear between keyframe matches.

    `keyframes` must be increasing, start at 0 and end at num_frames - 1, so every frame lies
    between two of them.
    """
    keyframes = _check_keyframes(keyframes, num_frames)
    matches = np.asarray(matches)
    if matches.shape != keyframes.shape:
        raise ValueError(f"matches must have shape {keyframes.shape} like keyframes, got {matches.shape}")
    if keyframes[0] != 0 or keyframes[-1] != num_frames - 1:
        raise ValueError(f"keyframes must start at 0 and end at {num_frames - 1}, got {keyframes[0]}..{keyframes[-1]}")
    return np.interp(np.arange(num_frames), keyframes, matches.astype(np.float64))


def interpolate_indices(keyframes: np.ndarray, matches: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) int training frame per output frame: `interpolate_positions` rounded (half to
    even, as Python's round in the official code)."""
    return np.rint(interpolate_positions(keyframes, matches, num_frames)).astype(np.int64)


def match_backgrounds(
    generated_degrees: np.ndarray, training_degrees: np.ndarray, config: KeyframeConfig = KeyframeConfig()
) -> BackgroundMatch:
    """The whole procedure (module docstring): keyframes on the output roll, matched to training
    frames, interpolated to every output frame.

    Args:
        generated_degrees: (T_out, 3) output (pitch, yaw, roll) in degrees, predicted from speech.
        training_degrees: (T_train, 3) the actor's training-video (pitch, yaw, roll) in degrees.
    """
    generated = _check_poses(generated_degrees, "generated_degrees")
    keyframes = select_keyframes(generated[:, ROLL], config)
    matches = match_keyframes(keyframes, generated, training_degrees, config)
    return BackgroundMatch(
        keyframes=keyframes,
        matches=matches,
        positions=interpolate_positions(keyframes, matches, len(generated)),
        indices=interpolate_indices(keyframes, matches, len(generated)),
    )


def _local_maxima(values: np.ndarray) -> np.ndarray:
    """Indices of local maxima of a 1-D sequence, a plateau counting once at its middle."""
    if values.size < 3:
        return np.zeros(0, dtype=np.int64)
    # Collapse runs of equal values, then a run is a maximum when both neighbouring runs are lower.
    starts = np.concatenate([[0], np.flatnonzero(np.diff(values)) + 1])
    ends = np.concatenate([starts[1:] - 1, [values.size - 1]])
    run_values = values[starts]
    inner = run_values[1:-1]
    peak = np.flatnonzero((inner > run_values[:-2]) & (inner > run_values[2:])) + 1
    return (starts[peak] + ends[peak]) // 2


def _merge_close(extrema: np.ndarray, magnitude: np.ndarray, min_gap: int) -> np.ndarray:
    """Drop from each run of extrema fewer than `min_gap` apart all but the largest `magnitude`
    (ties: the earlier one), comparing each extremum with the last one kept."""
    kept: list[int] = []
    for index in extrema.tolist():
        if kept and index - kept[-1] < min_gap:
            if magnitude[index] > magnitude[kept[-1]]:
                kept[-1] = index
        else:
            kept.append(index)
    return np.asarray(kept, dtype=np.int64)


def _check_series(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must have shape (T,) with T >= 1, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return values


def _check_poses(poses: np.ndarray, name: str) -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 or poses.shape[0] == 0:
        raise ValueError(f"{name} must have shape (T, 3) (pitch, yaw, roll) with T >= 1, got {poses.shape}")
    if not np.isfinite(poses).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return poses


def _check_keyframes(keyframes: np.ndarray, num_frames: int) -> np.ndarray:
    keyframes = np.asarray(keyframes)
    if keyframes.ndim != 1 or keyframes.size == 0 or not np.issubdtype(keyframes.dtype, np.integer):
        raise ValueError(f"keyframes must be a non-empty (K,) integer array, got {keyframes.dtype} {keyframes.shape}")
    if (np.diff(keyframes) <= 0).any() or keyframes[0] < 0 or keyframes[-1] >= num_frames:
        raise ValueError(f"keyframes must increase strictly within [0, {num_frames}), got {keyframes.tolist()}")
    return keyframes


def coherent_path(costs: Iterable[np.ndarray], switch_cost: float) -> np.ndarray:
    """(T,) int64: the path through T rows of per-candidate costs (each `(N,)`, candidates being
    the frames of a video in order) of least total cost, where each step holds its frame or moves
    on to the next one for free and any other move costs `switch_cost`: the Viterbi path of a
    video that plays or holds, and cuts only where that pays. Empty for no rows."""
    back, best = [], None
    for cost in costs:
        cost = np.asarray(cost, np.float64)
        if best is None:
            best = cost.copy()
            back.append(np.arange(len(cost)))
            continue
        candidates = np.arange(len(cost))
        advance = np.concatenate([[np.inf], best[:-1]])
        free = np.minimum(best, advance)
        origin = np.where(best <= advance, candidates, candidates - 1)
        jump = int(np.argmin(best))
        switch = best[jump] + switch_cost
        back.append(np.where(free <= switch, origin, jump).astype(np.int32))
        best = np.minimum(free, switch) + cost
    if best is None:
        return np.zeros(0, np.int64)
    path = np.empty(len(back), np.int64)
    path[-1] = int(np.argmin(best))
    for t in range(len(back) - 1, 0, -1):
        path[t - 1] = back[t][path[t]]
    return path


def hold_backgrounds(
    output_degrees: np.ndarray,
    training_degrees: np.ndarray,
    switch_degrees: float = 10.0,
    output_features: np.ndarray | None = None,
    training_features: np.ndarray | None = None,
    feature_weight: float = 0.0,
    frame_costs: np.ndarray | None = None,
) -> np.ndarray:
    """(T,) training frame per output frame for a face warped to its pose anyway (image-based
    synthesis): the frame nearest its pose (L1 over pitch, yaw, roll, degrees; plus
    `feature_weight` times the RMS difference of optional per-frame features, e.g. expressions,
    so the warp starts from a face that looks alike) along a `coherent_path` that holds a frame or
    plays on for free and jumps at a cost of `switch_degrees`. Unlike the keyframes'
    interpolation, a still head gets a still background, and the background never plays faster
    than the video or backwards (a walk through the training frames shows their own motion as
    flicker). Optional (N,) `frame_costs` (degrees) are added to each training frame's cost
    every frame it lends (a frame whose eyes are half closed: held, they look sleepy)."""
    output, training = (
        _check_poses(output_degrees, "output_degrees"),
        _check_poses(training_degrees, "training_degrees"),
    )
    use_features = output_features is not None and training_features is not None and feature_weight > 0

    def costs():
        for t, pose in enumerate(output):
            cost = np.abs(training - pose).sum(1)
            if use_features:
                cost = cost + feature_weight * np.sqrt(((training_features - output_features[t]) ** 2).mean(1))
            if frame_costs is not None:
                cost = cost + frame_costs
            yield cost

    return coherent_path(costs(), switch_degrees)
