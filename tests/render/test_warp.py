import cv2
import numpy as np
import pytest

from render.warp import similarity_transform, warp_near


def test_similarity_transform_recovers_rotation_scale_and_shift():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 100, (20, 2))
    angle, scale, shift = np.radians(7), 1.1, np.array([3.0, -5.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = scale * source @ rotation.T + shift
    matrix = similarity_transform(source, target + rng.normal(0, 1e-6, target.shape))
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-6)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-4)
    with pytest.raises(ValueError):
        similarity_transform(source[:1], target[:1])


def test_warp_near_moves_the_face_and_leaves_the_far_backdrop():
    image = np.zeros((200, 200, 3), np.uint8)
    cv2.circle(image, (100, 100), 10, (255, 255, 255), -1)
    cv2.rectangle(image, (0, 0), (20, 20), (0, 255, 0), -1)
    shift = np.array([[1.0, 0, 8], [0, 1.0, 0]])
    out = warp_near(image, shift, center=(100, 100), radius=60)
    ys, xs = np.nonzero(out[..., 0] > 128)
    assert abs(xs.mean() - 108) < 0.5 and abs(ys.mean() - 100) < 0.5
    np.testing.assert_array_equal(out[:30, :30], image[:30, :30])
    # The motion fades out smoothly: no pixel far from the centre moves.
    assert np.array_equal(out[:, :30], image[:, :30]) and np.array_equal(out[:30], image[:30])
