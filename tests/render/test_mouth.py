"""Mouth retrieval: which of the actor's frames lends its mouth interior to a target shape."""

import dataclasses

import numpy as np
import torch

from render.mouth import MouthConfig, MouthLandmarks, match_mouths, mouth_landmarks
from tests.render.conftest import neutral, opening_exp


def shapes(openings: list[float], offsets: list[float] | None = None) -> MouthLandmarks:
    """Mouths differing in their opening (the lower lip's 10 points lowered by it) and by a shift
    of every point along x (`offsets`)."""
    points = np.zeros((len(openings), 20, 3), np.float32)
    points[:, 10:, 1] = -np.asarray(openings, np.float32)[:, None]
    if offsets is not None:
        points[..., 0] = np.asarray(offsets, np.float32)[:, None]
    return MouthLandmarks(points, np.asarray(openings, np.float64), np.zeros((len(openings), 3)))


def test_a_closed_frame_lends_to_closed_targets_only_and_an_open_one_to_open_ones():
    candidates = shapes([0.01, 0.08])
    chosen = match_mouths(shapes([0.0, 0.05, 0.08]), candidates, MouthConfig(switch_cost=0.0))
    # The closed target takes the closed frame; a parted one (0.05) never the closed frame, whose
    # lips would be stretched over the opening: the open frame (0.08 is within 1/0.6 of it).
    np.testing.assert_array_equal(chosen, [0, 1, 1])


def test_a_parted_target_no_frame_fits_is_painted():
    candidates = shapes([0.01, 0.3])
    chosen = match_mouths(shapes([0.05, 0.0]), candidates, MouthConfig(switch_cost=0.0))
    np.testing.assert_array_equal(chosen, [-1, 0])


def test_mouths_are_matched_by_shape_and_the_choice_does_not_flicker():
    candidates = shapes([0.1, 0.3, 0.1, 0.3], [0.0, 0.5, 0.01, 0.52])
    free = MouthConfig(switch_cost=0.0)
    targets = shapes([0.1, 0.3, 0.1], [0.0, 0.52, 0.01])
    assert match_mouths(targets, candidates, free).tolist() == [0, 3, 2]
    # Targets flickering between two near-identical frames of the video: one stays chosen.
    wobble = shapes([0.1] * 8, [0.0, 0.01] * 4)
    assert len(set(match_mouths(wobble, candidates).tolist())) == 1
    assert len(set(match_mouths(wobble, candidates, free).tolist())) == 2
    # Moving on to the next frame of the video is free, as staying is.
    assert match_mouths(shapes([0.1, 0.3], [0.0, 0.5]), candidates).tolist() == [0, 1]


def test_a_target_opening_wider_than_any_frame_gets_none():
    candidates = shapes([0.02, 0.05], [0.0, 0.0])
    result = match_mouths(shapes([0.08, 0.5, 0.0], [0.0, 0.0, 0.0]), candidates)
    assert result[0] == 1 and result[1] == -1 and result[2] >= 0
    assert (match_mouths(shapes([0.1], [0.0]), shapes([], [])) == -1).all()


def test_a_closed_target_takes_a_closed_frame_however_the_path_would_rather_stay():
    """An open frame's interior squeezed between lips that should meet reads as a parted mouth
    (ICT-FaceKit vox_741400104 closed on 0.67-0.85 of its p/b/m, 0.91-1.00 with closed lenders)."""
    candidates = shapes([0.08, 0.0], [0.0, 0.5])  # frame 1 closed, and its shape otherwise far
    targets = shapes([0.08, 0.08, 0.0, 0.0, 0.08], [0.0, 0.0, 0.0, 0.0, 0.0])
    assert match_mouths(targets, candidates).tolist() == [0, 0, 1, 1, 0]
    assert match_mouths(shapes([0.0], [0.0]), shapes([0.08], [0.0])).tolist() == [-1]  # none closed: none lends


def test_mouth_landmarks_measure_the_opening(builtin):
    closed, open_ = neutral(builtin), neutral(builtin, exp=opening_exp(builtin))
    measured = mouth_landmarks(
        builtin,
        dataclasses.replace(
            closed,
            **{
                k: torch.cat([getattr(closed, k), getattr(open_, k)])
                for k in ("id", "exp", "tex", "angle", "gamma", "trans")
            },
        ),
    )
    assert measured.points.shape == (2, 20, 3)
    assert measured.opening[1] > measured.opening[0] + 0.05
