"""MFCC (+ phone) windows: one per 25 fps frame for any audio length, aligned to the frames."""

import wave

import av
import numpy as np
import pytest

from audio2pose import features
from audio2pose.features import (
    MIN_SPEECH_RMS,
    PHONES,
    FeatureConfig,
    audio_features,
    load_speech,
    mfcc_rows,
    num_video_frames,
    speech_rms,
)
from recon3d.errors import InputError
from tests.conftest import encode_video, numbered_frames

SR = 16000
MFCC_ONLY = FeatureConfig(phones=False)


@pytest.mark.parametrize("num_samples", [1, 639, 640, 641, 16000, 16000 * 3 + 17])
def test_one_window_per_video_frame(num_samples):
    frames = num_video_frames(num_samples)
    assert frames == max(1, int(np.ceil(num_samples / 640)))  # every started 40 ms
    windows = audio_features(np.zeros(num_samples, np.float32), config=MFCC_ONLY)
    assert windows.shape == (frames, 28, 12) and windows.dtype == np.float32
    assert np.isfinite(windows).all()  # digital silence: dithered, no log(0)
    assert audio_features(np.zeros(num_samples, np.float32), 7, MFCC_ONLY).shape == (7, 28, 12)


def test_windows_are_the_rows_of_frames_t_minus_3_to_t_plus_3():
    audio = np.random.default_rng(0).standard_normal(SR * 2).astype(np.float32)
    rows = mfcc_rows(audio, 50, MFCC_ONLY)
    windows = audio_features(audio, 50, MFCC_ONLY)
    assert rows.shape == (4 * (50 + 6), 12)
    for t in (0, 17, 49):
        np.testing.assert_array_equal(windows[t], rows[4 * t : 4 * t + 28])
    np.testing.assert_array_equal(windows, audio_features(audio, 50, MFCC_ONLY))  # deterministic


@pytest.mark.parametrize("chunk_rows", [1, 7, 100])
def test_rows_made_a_chunk_at_a_time_are_the_rows_of_one_pass(monkeypatch, chunk_rows):
    # Long speech is analysed in chunks of rows (flat memory): the pre-emphasis across a chunk's
    # edge and the dither's draws must make them the rows one pass over the whole signal makes.
    audio = np.random.default_rng(1).standard_normal(SR * 2).astype(np.float32)
    config = FeatureConfig(phones=False, normalize=False)
    monkeypatch.setattr(features, "MFCC_CHUNK_ROWS", 10**6)
    whole = mfcc_rows(audio, 50, config)
    monkeypatch.setattr(features, "MFCC_CHUNK_ROWS", chunk_rows)
    np.testing.assert_allclose(mfcc_rows(audio, 50, config), whole, rtol=1e-5, atol=1e-5)


def click_time_ms(click_s: float) -> float:
    """Where the MFCC response to a click is centred, read back from the rows, in ms."""
    silence = mfcc_rows(np.zeros(4 * SR), 100, FeatureConfig(phones=False, normalize=False))
    audio = np.zeros(4 * SR)
    audio[round(click_s * SR)] = 1.0
    response = np.abs(mfcc_rows(audio, 100, FeatureConfig(phones=False, normalize=False)) - silence).sum(1)
    centroid = (np.arange(len(response)) * response).sum() / response.sum()
    # Row r of the rows array is centred at 10 r - 15 ms - 3 frames of context.
    return 10 * centroid - 15 - 120


def test_click_lands_in_window_round_t_times_25():
    rng = np.random.default_rng(1)
    for click in rng.uniform(0.3, 3.7, 40):
        found = click_time_ms(click)
        assert abs(found - 1000 * click) < 5
        if abs(25 * click - round(25 * click)) < 0.35:  # not within 6 ms of a frame boundary
            assert round(found / 40) == round(25 * click)
    # And in the windows themselves: the click dominates the centre rows of its frame's window.
    for frame in (10, 31, 77):
        audio = np.zeros(4 * SR, np.float32)
        audio[round(frame * 640)] = 1.0
        centre = np.abs(
            audio_features(audio, 100, MFCC_ONLY) - audio_features(np.zeros(4 * SR, np.float32), 100, MFCC_ONLY)
        )
        assert centre[:, 12:16].sum((1, 2)).argmax() == frame


def write_wav(path, audio: np.ndarray, rate: int, channels: int = 1):
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.repeat(pcm, channels).tobytes())


def test_any_rate_and_channels_become_mono_16k(tmp_path):
    t = np.arange(44100 * 2) / 44100
    write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100, channels=2)
    audio, frames = load_speech(tmp_path / "tone.wav")
    assert frames == 50 and abs(len(audio) - 2 * SR) <= 2
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SR / len(audio) - 440) < 2
    audio, frames = load_speech(tmp_path / "tone.wav", num_frames=10)
    assert frames == 10 and len(audio) == 6400


def test_empty_audio_is_an_input_error(tmp_path):
    write_wav(tmp_path / "empty.wav", np.zeros(0), SR)
    with pytest.raises(InputError, match="empty"):
        load_speech(tmp_path / "empty.wav")


def encode_audio(path, codec: str, rate: int, layout: str, seconds: float = 1.0, freq: float = 440.0):
    """A tone encoded with PyAV (`codec` resamples and up-mixes the mono float frame itself)."""
    t = np.arange(round(seconds * rate)) / rate
    frame = av.AudioFrame.from_ndarray(
        (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None], format="flt", layout="mono"
    )
    frame.sample_rate, frame.pts = rate, 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    "name, codec, rate, layout",
    [
        ("tone.mp3", "libmp3lame", 44100, "mono"),
        ("tone.flac", "flac", 16000, "mono"),
        ("tone.ogg", "libopus", 48000, "stereo"),
        ("tone48k.wav", "pcm_s16le", 48000, "stereo"),
        ("tone8k.wav", "pcm_s16le", 8000, "mono"),
    ],
)
def test_common_speech_formats_are_read(tmp_path, name, codec, rate, layout):
    audio, frames = load_speech(encode_audio(tmp_path / name, codec, rate, layout))
    assert frames == 25 and abs(len(audio) - SR) <= 2
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * SR / len(audio) - 440) < 2


def test_a_video_s_soundtrack_is_read_as_speech(tmp_path):
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    video = encode_video(tmp_path / "talk.mp4", np.zeros((25, 32, 32, 3), np.uint8), audio=tone)
    audio, frames = load_speech(video)
    assert abs(frames - 25) <= 1 and abs(len(audio) - SR) <= 2048  # AAC pads its last packet
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * SR / len(audio) - 440) < 3


@pytest.mark.parametrize("case", ["zero_bytes", "text", "random_bytes", "folder", "missing", "video_without_sound"])
def test_what_is_not_speech_is_refused_in_words_about_audio(tmp_path, case):
    path = tmp_path / ("speech.mp4" if case == "video_without_sound" else "speech.wav")
    if case == "zero_bytes":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a recording\n" * 20)
    elif case == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    elif case == "folder":
        path.mkdir()
    elif case == "video_without_sound":
        encode_video(path, numbered_frames(5))
    with pytest.raises(InputError) as error:
        load_speech(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "video with frames" not in message and "mp4/mov" not in message
    assert "no such file" in message if case == "missing" else "give a wav, mp3, flac, ogg" in message


def test_phones_of_real_speech(shared_data):
    speech = sorted((shared_data / "audio").glob("*.wav"))[0]
    audio, frames = load_speech(speech)
    windows = audio_features(audio, frames)
    assert windows.shape == (frames, 28, 12 + len(PHONES) + 1)
    phones = windows[:, 12:16, 12:].mean(1)  # each frame's own rows
    np.testing.assert_allclose(windows[:, :, 12:].sum(-1), 1)  # one-hot
    speaking = phones[:, :-1].sum(1)
    assert speaking.mean() > 0.5  # mostly speech, not silence
    assert (phones.argmax(1) < len(PHONES)).sum() > 0 and len(np.unique(phones.argmax(1))) > 15
    silence = audio_features(np.zeros(SR, np.float32))
    assert (silence[:, :, -1] == 1).all()


def test_the_same_speech_gets_the_same_features_whatever_came_before(shared_data):
    first, other = sorted((shared_data / "audio").glob("*.wav"))[:2]
    audio, frames = load_speech(first)
    before = audio_features(audio, frames)
    audio_features(*load_speech(other))
    np.testing.assert_array_equal(audio_features(audio, frames), before)


def test_speech_rms_of_a_tone_silence_and_nothing():
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32)
    assert speech_rms(tone) == pytest.approx(0.5 / np.sqrt(2), rel=1e-4)
    assert speech_rms(np.zeros(16000, np.float32)) == 0 < MIN_SPEECH_RMS
    assert speech_rms(np.zeros(0, np.float32)) == 0
