"""The eyelid and gaze warp: a synthetic eye shuts exactly, looks aside, and nothing else moves."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from recon3d.crop import CropTransform
from recon3d.facemodels import load_face_model
from render.camera import PerspectiveCamera
from render.eyes import draw_eyes, eye_warp, moved_eyes

CAMERA = PerspectiveCamera.deep3d(128)

SKIN, SCLERA, IRIS = (190, 140, 120), (240, 240, 240), (40, 30, 20)


def synthetic_face() -> tuple[np.ndarray, np.ndarray]:
    """A 200x300 skin-coloured image with two almond eyes (white, a dark iris at the centre) and
    their (2, 6, 2) iBUG landmarks: corners at y = 100, lids 12 px above and below at the thirds."""
    image = np.full((200, 300, 3), SKIN, np.uint8)
    eyes = []
    for x0 in (60.0, 180.0):
        u = np.linspace(0, 60, 61)
        half = 18 * np.sin(np.pi * u / 60)  # lid height: 0 at the corners, 18 at the centre
        top = np.stack([x0 + u, 100 - half], 1)
        bottom = np.stack([x0 + u, 100 + half], 1)[::-1]
        cv2.fillPoly(image, [np.round(np.concatenate([top, bottom])).astype(np.int32)], SCLERA)
        cv2.circle(image, (int(x0 + 30), 100), 9, IRIS, -1)
        at = lambda a: 18 * np.sin(np.pi * a / 60)  # noqa: E731
        eyes.append(
            [
                [x0, 100],
                [x0 + 20, 100 - at(20)],
                [x0 + 40, 100 - at(40)],
                [x0 + 60, 100],
                [x0 + 40, 100 + at(40)],
                [x0 + 20, 100 + at(20)],
            ]
        )
    return image, np.array(eyes)


def bright(image: np.ndarray) -> np.ndarray:
    return image.min(-1) > 225


def test_a_shut_eye_hides_the_eyeball_and_nothing_else_changes():
    image, eyes = synthetic_face()
    shut = draw_eyes(image.copy(), eyes, 1.0)
    assert bright(image).sum() > 1000
    # No sclera shows between the corners (the corner pixels themselves are the lids' meeting point).
    left = np.argwhere(bright(shut))[:, ::-1]
    assert all(np.abs(eyes[:, [0, 3]].reshape(-1, 2) - point).sum(1).min() <= 1 for point in left)
    dark = (shut.max(-1) < 80).sum()
    assert dark == 0  # nor the iris
    changed = np.abs(shut.astype(int) - image).sum(-1) > 0
    ys, xs = np.nonzero(changed)
    # Only inside the eyes' boxes: from above the lids' pinned band to below the lower lid.
    assert (
        xs.min() >= 57
        and xs.max() <= 243
        and ys.min() >= 100 - 18 - 0.6 * 60 - 3
        and ys.max() <= 100 + 18 + 0.35 * 60 + 3
    )


def test_the_lid_stretches_from_below_the_brow_and_the_brow_stays_put():
    image, eyes = synthetic_face()
    brow_y = 100 - 18 - 12  # 12 px above the lids' top: inside the 0.6-eye-width band (36 px)
    for x0 in (60, 180):
        cv2.line(image, (x0, brow_y), (x0 + 60, brow_y), (60, 40, 30), 3)
    brows = np.stack([np.stack([np.linspace(x0, x0 + 60, 5), np.full(5, brow_y + 1.0)], 1) for x0 in (60.0, 180.0)])
    with_brows = draw_eyes(image.copy(), np.concatenate([eyes, brows], 1), 1.0)
    band = np.s_[brow_y - 3 : brow_y + 4, 60:240]
    assert np.array_equal(with_brows[band], image[band])
    assert bright(with_brows).sum() <= 4  # and the eye still shuts
    without = draw_eyes(image.copy(), eyes, 1.0)
    assert not np.array_equal(without[band], image[band])  # a band past the brow bends it


def test_closing_is_gradual_and_open_changes_nothing():
    image, eyes = synthetic_face()
    assert np.array_equal(draw_eyes(image.copy(), eyes, 0.0), image)
    shown = [bright(draw_eyes(image.copy(), eyes, c)).sum() for c in (0.0, 0.3, 0.6, 0.9)]
    assert shown[0] > shown[1] > shown[2] > shown[3]


def test_gaze_moves_the_iris_towards_the_second_corner():
    image, eyes = synthetic_face()

    def iris_x(picture):
        ys, xs = np.nonzero(picture[:, :150].max(-1) < 80)
        return xs.mean()

    assert iris_x(draw_eyes(image.copy(), eyes, 0.0, 0.1)) - iris_x(image) > 3
    assert iris_x(draw_eyes(image.copy(), eyes, 0.0, -0.1)) - iris_x(image) < -3


def test_a_tiny_or_missing_eye_is_left_alone():
    image, eyes = synthetic_face()
    assert eye_warp(np.zeros((6, 2)), 1.0, 0.0, image.shape[:2]) is None


def test_eyes_move_with_the_face_models_landmarks():
    model = load_face_model("builtin").subset("landmarks")
    crop = CropTransform(x0=10.0, y0=20.0, side=256.0, size=128, frame_width=300, frame_height=300)
    filmed = model.layout.zeros(2)
    tracked = np.random.default_rng(0).uniform(50, 200, (2, 68, 2))
    same = moved_eyes(model, CAMERA, crop, filmed, filmed, tracked)
    assert np.allclose(same[:, :, :6].reshape(2, 12, 2), tracked[:, 36:48])
    assert np.allclose(same[:, :, 6:].reshape(2, 10, 2), tracked[:, 17:27])
    turned = dataclasses.replace(filmed, angle=torch.tensor([[0.0, 0.2, 0.0], [0.0, 0.2, 0.0]]))
    moved = moved_eyes(model, CAMERA, crop, filmed, turned, tracked)
    # Turned by 0.2 rad, the eyes move sideways by several pixels; both frames alike.
    shift = (moved[:, :, :6].reshape(2, 12, 2) - tracked[:, 36:48])[..., 0]
    assert np.abs(shift).mean() > 5 and np.allclose(shift[0], shift[1])
