"""The face-model geometry helpers shared by the model converters and the face synthesis."""

import numpy as np

from recon3d.facemodels.geometry import points_in_polygon


def test_points_inside_a_polygon():
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    points = np.array([[1.0, 1.5], [3.5, 2.0], [5.0, 2.0], [-1.0, -1.0], [2.0, 3.9]])
    assert points_in_polygon(points, square).tolist() == [True, True, False, False, True]
    notch = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [2.0, 1.0], [0.0, 4.0]])  # not convex
    assert points_in_polygon(np.array([[2.0, 3.0], [2.0, 0.5]]), notch).tolist() == [False, True]
