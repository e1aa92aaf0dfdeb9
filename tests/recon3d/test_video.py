import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from recon3d.errors import InputError
from recon3d.video import (
    STALE_TEMP_SECONDS,
    VideoWriter,
    iter_frames,
    probe,
    read_audio,
    read_frames,
    remove_stale_temps,
    write_video,
)
from tests.conftest import encode_video, frame_index, numbered_frames


@pytest.mark.parametrize("fps", [30, 60])
def test_faster_video_resampled_to_25fps_keeps_duration_and_picks_nearest_frames(tmp_path, fps):
    src = encode_video(tmp_path / "a.mp4", numbered_frames(fps, step=4), fps=fps)  # 1.0 s
    frames = read_frames(src)
    assert abs(len(frames) - 25) <= 1
    # Output frame k (at k/25 s) shows the source frame nearest to it: round(k * fps / 25).
    picked = [frame_index(f, step=4) for f in frames]
    expected = [min(fps - 1, int(np.floor(k * fps / 25 + 0.5))) for k in range(len(frames))]
    assert max(abs(p - e) for p, e in zip(picked, expected)) <= 1
    assert picked == sorted(picked)


def test_variable_frame_rate(tmp_path):
    # 20 frames at irregular times within 1 s (time base 1 ms).
    times = np.cumsum(np.r_[0, np.random.default_rng(0).uniform(0.02, 0.08, 19)])
    times = times / times[-1] * 0.95
    src = encode_video(
        tmp_path / "vfr.mkv",
        numbered_frames(20),
        fps=20,
        pts=[int(t * 1000) for t in times],
        time_base=Fraction(1, 1000),
    )
    frames = read_frames(src)
    info = probe(src)
    assert abs(len(frames) - info.duration * 25) <= 1
    for k, frame in enumerate(frames):
        nearest = int(np.argmin(np.abs(times - k / 25)))
        assert abs(frame_index(frame) - nearest) <= 1


@pytest.mark.parametrize("name,codec", [("a.mov", "libx264"), ("a.mkv", "libx264"), ("a.webm", "libvpx-vp9")])
def test_common_containers_and_codecs(tmp_path, name, codec):
    audio = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440).astype(np.float32) * 0.3
    src = encode_video(tmp_path / name, numbered_frames(25), fps=25, codec=codec, audio=audio)
    info = probe(src)
    assert (info.width, info.height) == (64, 64)
    assert info.has_audio
    assert len(read_frames(src)) == 25
    speech = read_audio(src)
    assert abs(len(speech) - 16000) < 0.05 * 16000
    assert 0.1 < np.abs(speech).max() < 0.5


def test_real_30fps_clip_duration_and_audio_length(clips):
    src = clips / "retalk_4.mp4"  # 30 fps, 44.1 kHz stereo
    info = probe(src)
    assert info.source_fps == pytest.approx(30, abs=0.01)
    count = sum(1 for _ in iter_frames(src))
    assert abs(count - info.duration * 25) <= 1
    import av

    with av.open(str(src)) as container:  # this file's audio track ends 56 ms before its video
        stream = container.streams.audio[0]
        audio_seconds = float(stream.duration * stream.time_base)
    audio = read_audio(src)
    assert abs(len(audio) / 16000 - audio_seconds) < 1 / 25
    assert read_audio(src, num_samples=count * 640).shape == (count * 640,)


def test_write_video_round_trip_with_audio(tmp_path, clips):
    frames = read_frames(clips / "vox_00002.mp4")[:50]
    audio = read_audio(clips / "vox_00002.mp4", num_samples=50 * 640)
    out = tmp_path / "out" / "clip.mp4"
    assert write_video(out, frames, audio=audio) == 50
    info = probe(out)
    assert (info.width, info.height, info.video_codec, info.audio_rate) == (224, 224, "h264", 16000)
    again = read_frames(out)
    assert again.shape == frames.shape
    assert np.abs(again.astype(float) - frames).mean() < 3
    back = read_audio(out)
    assert abs(len(back) - len(audio)) <= 1024  # AAC pads to whole 1024-sample frames
    n = min(len(back), len(audio))
    assert np.corrcoef(back[:n], audio[:n])[0, 1] > 0.9  # in sync: no shift


@pytest.mark.parametrize("height, width", [(33, 33), (24, 33), (33, 24), (24, 32)])
def test_odd_frame_sizes_are_kept_exactly(tmp_path, height, width):
    # Grey noise: 4:2:0's subsampled chroma loses nothing of it, so every size round-trips.
    frames = np.random.default_rng(0).integers(0, 256, (3, height, width, 1), np.uint8).repeat(3, axis=3)
    frames[:, -1] = 255  # the last row and column are the frame's own, not padding
    frames[:, :, -1] = 0
    assert write_video(tmp_path / "odd.mp4", frames, crf=0) == 3
    info = probe(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (width, height)
    back = read_frames(tmp_path / "odd.mp4")
    assert back.shape == frames.shape
    assert np.abs(back.astype(np.float32) - frames).mean() < 3  # lossless but for RGB <-> YUV rounding


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "x.mp4") as writer:
            writer.write(numbered_frames(1)[0])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_an_output_in_folders_that_do_not_exist_makes_them(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "x.mp4"
    with VideoWriter(path) as writer:
        writer.write(numbered_frames(1)[0])
    assert probe(path).num_frames() == 1 and [p.name for p in path.parent.iterdir()] == ["x.mp4"]


def test_two_writers_of_one_output_leave_one_whole_video(tmp_path):
    # Two generates given the same -o: each writes its own temporary, the last to finish wins whole.
    path = tmp_path / "same name é.mp4"
    frames = numbered_frames(6)
    with VideoWriter(path) as first, VideoWriter(path) as second:
        for frame in frames:
            first.write(frame)
            second.write(frame)
            second.write(frame)
    # `second` finished first (the inner context), `first` last: its 6 frames are the file.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert [frame_index(f) for f in read_frames(path)] == list(range(6))


def test_image_is_a_one_frame_video(tmp_path):
    from PIL import Image

    Image.fromarray(numbered_frames(2)[1]).save(tmp_path / "face.png")
    info = probe(tmp_path / "face.png")
    assert info.is_image and not info.has_audio and info.num_frames() == 1
    assert read_frames(tmp_path / "face.png").shape == (1, 64, 64, 3)


@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, Path]:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 10)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    encode_video(tmp_path / "silent.mp4", numbered_frames(5))
    # A container with an audio stream only.
    import av

    with av.open(str(tmp_path / "speech.m4a"), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    # A real mp4 whose data is cut short after its header.
    data = (encode_video(tmp_path / "full.mp4", numbered_frames(25))).read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    return {p.stem: p for p in tmp_path.iterdir()}


@pytest.mark.parametrize(
    "name,message",
    [
        ("missing", "no such file"),
        ("empty", "zero length"),
        ("text", "not a readable video"),
        ("broken", "not a readable image"),
        ("speech", "no video stream"),
    ],
)
def test_bad_video_inputs(bad_inputs, tmp_path, name, message):
    path = bad_inputs.get(name, tmp_path / "missing.mp4")
    with pytest.raises(InputError, match=message):
        probe(path)
    with pytest.raises(InputError, match=message):
        read_frames(path)


def test_truncated_video_fails_clearly(bad_inputs):
    with pytest.raises(InputError, match="corrupt|not a readable video|no frames"):
        read_frames(bad_inputs["truncated"])


def test_no_audio_stream_where_audio_is_required(bad_inputs):
    assert not probe(bad_inputs["silent"]).has_audio
    with pytest.raises(InputError, match="no audio stream"):
        read_audio(bad_inputs["silent"])


def test_a_write_removes_the_temporaries_killed_writers_left(tmp_path):
    output = tmp_path / "talk.mp4"
    stale, live = tmp_path / ".talk.0123abcd.tmp.mp4", tmp_path / ".talk.89abcdef.tmp.mp4"
    others = [tmp_path / ".other.0123abcd.tmp.mp4", tmp_path / ".talk.notatemp.tmp.mp4"]
    for path in (stale, live, *others):
        path.write_bytes(b"half written")
    old = time.time() - STALE_TEMP_SECONDS - 60
    for path in (stale, *others):
        os.utime(path, (old, old))
    write_video(output, numbered_frames(5))
    # A temporary touched lately may be another writer's, live: it stays.
    assert not stale.exists() and live.exists() and all(path.exists() for path in others)
    assert remove_stale_temps(output, 0.0) == [live]
