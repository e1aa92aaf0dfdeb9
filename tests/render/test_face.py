"""The face model's render in the actor's frames: its mouth hole filled."""

import numpy as np

from render.face import fill_mouth_hole


def test_the_mouth_hole_is_filled_and_other_holes_stay_open():
    coverage = np.zeros((64, 64), np.float32)
    coverage[10:54, 10:54] = 1
    coverage[40:46, 24:40] = 0  # the mouth opening
    coverage[20:24, 18:26] = 0  # an eye
    image = np.full((64, 64, 3), 200, np.uint8)
    lips = np.array([[26, 43], [32, 41], [38, 43], [32, 45]], np.float32)
    fill_mouth_hole(image, coverage, lips)
    assert coverage[40:46, 24:40].all()
    # Upper teeth in the top of the opening, the dark interior below them.
    assert (image[40, 30] > 150).all() and (image[45, 30] < 100).all()
    assert not coverage[20:24, 18:26].any() and not coverage[:10].any()
