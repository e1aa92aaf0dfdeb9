import logging

import cv2
import numpy as np
import pytest

from recon3d.errors import InputError
from recon3d.landmarks import IBUG68_FROM_MESH, interocular
from recon3d.track import FaceTrack, TrackConfig, fill_gaps, missing_runs, still_segment_jitter, track_video
from recon3d.video import read_audio, read_frames, write_video
from tests.conftest import encode_video


def test_missing_runs_and_gap_filling():
    detected = np.array([False, True, True, False, False, True, False])
    assert missing_runs(detected) == [(0, 1), (3, 5), (6, 7)]
    points = np.zeros((7, 1, 2))
    points[1], points[2], points[5] = 1.0, 2.0, 5.0
    filled = fill_gaps(points, detected)[:, 0, 0]
    np.testing.assert_allclose(filled, [1, 1, 2, 3, 4, 5, 5])


def test_ibug68_table_is_68_distinct_mesh_vertices():
    assert len(IBUG68_FROM_MESH) == 68 and len(set(IBUG68_FROM_MESH.tolist())) == 68
    assert IBUG68_FROM_MESH.max() < 468


@pytest.fixture(scope="module")
def vox_track(clips):
    return track_video(clips / "vox_00002.mp4", progress=False)


def test_tracks_a_real_clip(vox_track, clips):
    track = vox_track
    assert track.num_frames == 126  # 5.04 s at 25 fps
    assert track.detected.all()
    assert track.mesh.shape == (126, 478, 3) and track.ibug68.shape == (126, 68, 2)
    assert track.confidence.mean() > 0.7
    # Landmarks are in the frame, and the left eye is right of the right eye (image coordinates).
    assert (track.ibug68 > 0).all() and (track.ibug68 < 224).all()
    assert (track.ibug68[:, 45, 0] > track.ibug68[:, 36, 0]).all()
    assert (interocular(track.ibug68) > 40).all()
    # The stable crop holds every frame's landmarks.
    inside = track.crop.frame_to_crop(track.mesh)
    assert (inside[..., :2] >= 0).all() and (inside[..., :2] <= track.crop.size).all()


def test_smoothing_keeps_jitter_low_without_moving_landmarks(vox_track):
    raw, smoothed, _ = still_segment_jitter(vox_track)
    assert smoothed < 0.005  # acceptance: < 0.5% of the crop size
    assert smoothed < raw
    # Smoothing must not drag landmarks away: mean shift well under 1% of the crop.
    shift = np.linalg.norm(vox_track.mesh - vox_track.mesh_raw, axis=-1).mean() / vox_track.crop.side
    assert shift < 0.01


def test_track_save_load_round_trip(vox_track, tmp_path):
    vox_track.save(tmp_path / "track.npz")
    loaded = FaceTrack.load(tmp_path / "track.npz")
    np.testing.assert_array_equal(loaded.mesh, vox_track.mesh)
    np.testing.assert_array_equal(loaded.detected, vox_track.detected)
    assert loaded.crop == vox_track.crop
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable track file"):
        FaceTrack.load(tmp_path / "bad.npz")


def _clip_with_blank_frames(clips, tmp_path, blank: slice, name: str):
    frames = read_frames(clips / "vox_00002.mp4")[:50].copy()
    frames[blank] = 0
    return encode_video(tmp_path / name, frames, audio=read_audio(clips / "vox_00002.mp4", num_samples=50 * 640))


def test_short_gap_is_interpolated(clips, tmp_path):
    track = track_video(_clip_with_blank_frames(clips, tmp_path, slice(20, 23), "gap3.mp4"), progress=False)
    assert track.detected.tolist() == [True] * 20 + [False] * 3 + [True] * 27
    assert (track.confidence[20:23] == 0).all()
    # Interpolated landmarks sit between their neighbours.
    nose = track.mesh_raw[19:24, 4, :2]
    assert np.linalg.norm(nose[1:] - nose[:-1], axis=1).max() < 5


def test_long_gap_fails_naming_the_time_range(clips, tmp_path):
    path = _clip_with_blank_frames(clips, tmp_path, slice(20, 30), "gap10.mp4")
    with pytest.raises(InputError, match=r"no face from 00:00.80 to 00:01.20 \(frames 20-29\)"):
        track_video(path, progress=False)
    # A longer max_gap accepts it.
    assert not track_video(path, TrackConfig(max_gap=10), progress=False).detected[20:30].any()


def test_no_face_fails(tmp_path):
    path = encode_video(tmp_path / "blank.mp4", np.full((10, 64, 64, 3), 90, np.uint8))
    with pytest.raises(InputError, match="no face found"):
        track_video(path, progress=False)


def test_two_faces_tracks_the_largest_and_warns(clips, tmp_path, caplog):
    frames = read_frames(clips / "vox_00002.mp4")[:20]
    small = np.stack([cv2.resize(f, (112, 112), interpolation=cv2.INTER_AREA) for f in frames])
    canvas = np.zeros((20, 224, 336, 3), np.uint8)
    canvas[:, :, 112:] = frames  # the large face on the right
    canvas[:, 56:168, :112] = small
    path = encode_video(tmp_path / "two.mp4", canvas)
    with caplog.at_level(logging.WARNING, logger="talkface"):
        track = track_video(path, progress=False)
    assert "more than one face" in caplog.text
    assert (track.num_faces == 2).mean() > 0.5
    assert (track.boxes[:, 0] > 112).all()


def test_two_faces_of_about_the_same_size_are_refused(clips, tmp_path):
    frames = read_frames(clips / "vox_00002.mp4")[:20]
    path = encode_video(tmp_path / "two.mp4", np.concatenate([frames, frames[:, :, ::-1]], 2))
    with pytest.raises(InputError, match="two faces of about the same size in 20 of 20 frames"):
        track_video(path, progress=False)


@pytest.mark.parametrize(
    "height, width, scale",
    [(2160, 3840, 8.0), (223, 221, 1.0), (400, 224, 1.0)],
    ids=["4k", "odd", "vertical"],
)
def test_any_frame_size_is_tracked_where_the_face_is(clips, tmp_path, height, width, scale):
    faces = read_frames(clips / "vox_00002.mp4")[:6]
    side = int(224 * scale) if scale > 1 else min(height, width, 224)
    canvas = np.zeros((len(faces), height, width, 3), np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    for frame, face in zip(canvas, faces):
        frame[top : top + side, left : left + side] = cv2.resize(face[:side, :side], (side, side))
    write_video(tmp_path / "clip.mp4", canvas)  # odd sizes too (H.264 4:4:4)
    track = track_video(tmp_path / "clip.mp4", progress=False)
    assert track.detected.all() and (track.crop.frame_width, track.crop.frame_height) == (width, height)
    boxes = track.boxes
    assert (boxes[:, 0] >= left - 1).all() and (boxes[:, 2] <= left + side + 1).all()
    assert (boxes[:, 1] >= top - 1).all() and (boxes[:, 3] <= top + side + 1).all()
    assert side * 0.3 < np.median(boxes[:, 2] - boxes[:, 0]) < side


def test_a_small_face_in_a_big_frame_is_found_and_tracked_where_it_is(clips, tmp_path):
    """A face about 130 px tall in 1920x1080 footage was refused as "no face found"."""
    frames = read_frames(clips / "vox_00010.mp4")[:10]
    big = np.full((len(frames), 1080, 1920, 3), 90, np.uint8)
    x0, y0 = 1300, 600
    for k, frame in enumerate(frames):
        big[k, y0 : y0 + 260, x0 : x0 + 260] = cv2.resize(frame, (260, 260), interpolation=cv2.INTER_AREA)
    track = track_video(encode_video(tmp_path / "far.mp4", big), progress=False)
    assert track.detected.all()
    # The landmarks are where the face is, as tracked in the clip itself (scaled and moved).
    near = track_video(encode_video(tmp_path / "near.mp4", frames), progress=False)
    expected = near.mesh_raw[:, :, :2] * (260 / 224) + [x0, y0]
    error = np.linalg.norm(track.mesh_raw[:, :, :2] - expected, axis=-1).mean()
    assert error < 0.05 * interocular(near.ibug68).mean() * 260 / 224
