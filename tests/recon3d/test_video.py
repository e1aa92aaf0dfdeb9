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


def _asymmetric_frames(count: int, height: int, width: int) -> np.ndarray:
    """Frames whose top-left quarter is bright, the rest dark: which way is up is plain."""
    frames = np.full((count, height, width, 3), 40, np.uint8)
    frames[:, : height // 2, : width // 2] = 220
    return frames


def test_a_phone_video_stored_sideways_reads_upright_at_its_displayed_size(tmp_path):
    upright = _asymmetric_frames(5, 96, 64)  # portrait, as the phone showed it
    # Stored turned a quarter counter-clockwise, tagged to be turned back clockwise (-90) on display.
    stored = np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2)))
    src = encode_video(tmp_path / "phone.mp4", stored, rotation=-90)
    info = probe(src)
    frames = read_frames(src)
    assert (info.width, info.height) == (64, 96)
    assert frames.shape[1:] == (96, 64, 3)
    assert np.abs(frames.astype(int) - upright).mean() < 4
    # Untagged, the same pixels stay as stored.
    assert read_frames(encode_video(tmp_path / "plain.mp4", stored)).shape[1:] == (64, 96, 3)


def test_non_square_pixels_are_resampled_to_square_ones(tmp_path):
    frames = _asymmetric_frames(3, 48, 48)
    src = encode_video(tmp_path / "sar.mp4", frames, pixel_aspect=Fraction(4, 3))
    assert (probe(src).width, probe(src).height) == (64, 48)
    shown = read_frames(src)
    assert shown.shape[1:] == (48, 64, 3)
    # The bright quarter stays a quarter of the now wider frame.
    assert abs(float((shown[0, :, :, 0] > 128).mean()) - 0.25) < 0.03


def test_a_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    from PIL import Image

    upright = _asymmetric_frames(1, 40, 30)[0]
    image = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))
    exif = image.getexif()
    exif[0x0112] = 6  # EXIF orientation 6: shown turned 90 degrees clockwise
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert np.abs(read_frames(tmp_path / "phone.jpg")[0].astype(int) - upright).mean() < 6
    assert (probe(tmp_path / "phone.jpg").width, probe(tmp_path / "phone.jpg").height) == (30, 40)


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    from scipy.io import wavfile

    wavfile.write(path, 16000, samples.astype(np.float32))
    return path


def _tone(seconds: float = 1.0, level: float = 0.3) -> np.ndarray:
    return (level * np.sin(np.arange(int(16000 * seconds)) / 16000 * 2 * np.pi * 220)).astype(np.float32)


def test_samples_that_are_not_numbers_are_read_as_silence_with_a_warning(tmp_path, caplog):
    speech = _tone()
    speech[[100, 5000, 9000]] = [np.nan, np.inf, -np.inf]
    audio = read_audio(_write_wav(tmp_path / "nan.wav", speech))
    assert np.isfinite(audio).all()
    assert np.allclose(audio[[100, 5000, 9000]], 0) and np.allclose(audio[:100], speech[:100], atol=1e-6)
    assert "3 audio samples are not numbers" in caplog.text


def test_float_samples_far_beyond_full_scale_are_scaled_down_with_a_warning(tmp_path, caplog):
    audio = read_audio(_write_wav(tmp_path / "loud.wav", _tone() * 20000))  # int16 units in a float file
    assert np.abs(audio).max() == pytest.approx(1.0)
    assert "times full scale" in caplog.text
    caplog.clear()
    read_audio(_write_wav(tmp_path / "clipped.wav", np.clip(_tone(level=3.0), -1, 1)))
    assert "hard clipped" in caplog.text
    caplog.clear()
    read_audio(_write_wav(tmp_path / "fine.wav", _tone()))
    assert caplog.text == ""


def test_the_loudest_of_several_audio_tracks_is_read(tmp_path):
    import av

    path = tmp_path / "tracks.mkv"
    speech = _tone()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        tracks = [container.add_stream("pcm_s16le", rate=16000, layout="mono") for _ in range(2)]
        for i, image in enumerate(numbered_frames(25, size=32)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for track, samples in zip(tracks, (np.zeros_like(speech), speech)):  # the first track silent
            frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            container.mux(track.encode(frame))
            container.mux(track.encode(None))
    audio = read_audio(path)
    assert np.abs(audio).max() > 0.25
    assert np.corrcoef(audio[: len(speech)], speech[: len(audio)])[0, 1] > 0.99
