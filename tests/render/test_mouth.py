"""Mouth retrieval: which of the actor's frames lends its mouth interior to a target shape."""

import numpy as np

from render.mouth import MouthConfig, MouthShapes, match_mouths


def shapes(openings: list[float]) -> MouthShapes:
    """Mouths differing only in their opening (the lower lip's 10 points lowered by it)."""
    points = np.zeros((len(openings), 20, 3), np.float32)
    points[:, 10:, 1] = -np.asarray(openings, np.float32)[:, None]
    return MouthShapes(points, np.asarray(openings), np.zeros((len(openings), 3)))


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
