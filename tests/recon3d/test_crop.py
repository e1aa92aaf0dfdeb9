import numpy as np
import pytest

from recon3d.crop import CropTransform, stable_crop


@pytest.fixture
def transform():
    # A region partly outside a 320x240 frame, resampled up (side 150 -> 256).
    return CropTransform(x0=200.3, y0=-20.7, side=150.0, size=256, frame_width=320, frame_height=240)


def test_point_round_trip(transform):
    points = np.random.default_rng(0).uniform(0, 300, (50, 3))
    np.testing.assert_allclose(transform.crop_to_frame(transform.frame_to_crop(points)), points, atol=1e-9)
    # Region corners land on crop corners.
    np.testing.assert_allclose(
        transform.frame_to_crop(np.array([[200.3, -20.7], [350.3, 129.3]])), [[0, 0], [256, 256]]
    )


@pytest.mark.parametrize("side", [150.0, 256.0, 400.0])
def test_crop_then_paste_back_is_identity_within_one_pixel(side):
    rng = np.random.default_rng(1)
    frame = np.zeros((240, 320, 3), np.uint8)
    transform = CropTransform(x0=60.4, y0=10.6, side=side, size=256, frame_width=320, frame_height=240)
    # Blobs (a few pixels wide, so they survive downsampling) at known places inside the region.
    centres = rng.uniform([80, 30], [200, 150], (5, 2))
    yy, xx = np.mgrid[0:240, 0:320] + 0.5
    for cx, cy in centres:
        frame[..., 1] = np.maximum(
            frame[..., 1], (255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8)).astype(np.uint8)
        )
    crop = transform.crop(frame)
    assert crop.shape == (256, 256, 3)
    pasted = transform.paste(crop, np.zeros_like(frame))
    for cx, cy in centres:
        window = (np.abs(xx - cx) < 6) & (np.abs(yy - cy) < 6)
        weights = pasted[..., 1].astype(float) * window
        found = np.array([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()
        assert np.linalg.norm(found - [cx, cy]) < 1.0
    # Inside the region the pasted image reproduces the frame's intensities.
    inside = (xx > 70) & (xx < 200) & (yy > 20) & (yy < 150)
    assert np.abs(pasted[inside].astype(float) - frame[inside]).mean() < 2.0


def test_crop_at_unit_scale_copies_pixels():
    frame = np.random.default_rng(2).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    transform = CropTransform(x0=10, y0=20, side=64, size=64, frame_width=120, frame_height=100)
    np.testing.assert_array_equal(transform.crop(frame), frame[20:84, 10:74])
    np.testing.assert_array_equal(
        transform.paste(transform.crop(frame), np.zeros_like(frame))[20:84, 10:74], frame[20:84, 10:74]
    )


def test_paste_with_mask_blends_and_keeps_input(transform):
    frame = np.full((240, 320, 3), 100, np.uint8)
    crop = np.full((256, 256, 3), 200, np.uint8)
    mask = np.zeros((256, 256), np.float32)
    mask[64:192, 64:192] = 1.0
    out = transform.paste(crop, frame, mask)
    assert (frame == 100).all()  # input untouched
    centre = np.rint(transform.crop_to_frame(np.array([128.0, 128.0]))).astype(int)
    assert out[centre[1], centre[0]].tolist() == [200, 200, 200]
    assert out[235, 5].tolist() == [100, 100, 100]


def test_stable_crop_holds_every_box():
    rng = np.random.default_rng(3)
    starts = rng.uniform([100, 80], [160, 120], (40, 2))
    boxes = np.concatenate([starts, starts + rng.uniform(90, 110, (40, 1))], axis=1)
    transform = stable_crop(boxes, 640, 480, size=128)
    corners = np.concatenate([boxes[:, :2], boxes[:, 2:]])
    inside = transform.frame_to_crop(corners)
    assert (inside >= 0).all() and (inside <= 128).all()
    assert transform.side >= 1.8 * 110 * 0.99
