"""Speech features for audio2pose: MFCCs in one 28x12 context window per 25 fps video frame.

As Yi et al. (2020): 16 kHz mono, `python_speech_features.mfcc` with a 25 ms window and a 10 ms
step, 13 cepstra with c0 dropped (12 columns), and for video frame t the 28 MFCC rows of frames
t-3..t+3 (4 rows per 40 ms frame, 280 ms in all).

Alignment (what makes the windows and the frames agree for any audio length): video frame t
owns the time t/25 s +- 20 ms (a click at time s belongs to frame round(25 s)). The 4 rows of
frame t are the MFCC frames centred at t/25 s - 15, -5, +5, +15 ms, so the audio is padded with
silence by 147.5 ms before (Yi et al.'s 120 ms of context plus 27.5 ms that centre the rows on the
frame) and trimmed or padded after, and the number of windows is the number of video frames.

Two choices differ from the reference code and are deliberate: a Hamming analysis window (the
library's default is none, which smears a click over three rows) and a fixed-seed dither at
-80 dBFS, so digital silence gives finite, deterministic log energies instead of log(eps).
Features are then normalised per utterance (cepstral mean and variance normalisation), so
recordings of different loudness and microphones look alike to the network.

Phones (on by default): MFCCs carry the speaker as much as the speech, and a corpus of 20 short
clips cannot teach a network to ignore the speaker. So each row also gets the one-hot phone that
PocketSphinx's phone recogniser (its bundled US-English acoustic model, trained on far more
speakers; the approach of Rhubarb Lip Sync) decodes there, on the same 10 ms grid. The window of
frame t is then 28 x (12 + 40): 39 CMU phones plus one class for silence and noise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from python_speech_features import mfcc
from tqdm import tqdm

from audio2pose.phones import PHONES, SPHINX_FRAME, phone_loop, speech_pieces
from recon3d.errors import InputError
from recon3d.video import AUDIO_RATE, VIDEO_FPS, read_audio

MFCC_STEP = 0.010
"""Seconds between MFCC rows."""
ROWS_PER_FRAME = 4
"""MFCC rows per 25 fps video frame (40 ms / 10 ms)."""
MFCC_CHUNK_ROWS = 1000
"""MFCC rows computed at a time (10 s of speech)."""
PREEMPHASIS = 0.97
"""python_speech_features' pre-emphasis coefficient (its default)."""
MIN_SPEECH_RMS = 1e-3
"""Quietest speech (RMS of [-1, 1] samples, about -60 dBFS): below it is silence."""


@dataclass(frozen=True)
class FeatureConfig:
    """How speech becomes per-frame MFCC windows (defaults: Yi et al. 2020)."""

    sample_rate: int = AUDIO_RATE
    window_length: float = 0.025
    """MFCC analysis window, seconds."""
    num_cepstra: int = 12
    """MFCCs kept per row, after dropping c0."""
    context: int = 3
    """Video frames of context on each side: the window spans frames t-context..t+context."""
    normalize: bool = True
    """Per-utterance cepstral mean/variance normalisation."""
    dither: float = 1e-4
    """Amplitude of the seeded white noise added before analysis (0 = none)."""
    phones: bool = True
    """Append the recognised phone of each row, one-hot (needs 16 kHz)."""

    @property
    def window_rows(self) -> int:
        return ROWS_PER_FRAME * (2 * self.context + 1)

    @property
    def num_columns(self) -> int:
        return self.num_cepstra + (len(PHONES) + 1 if self.phones else 0)


def speech_rms(audio: np.ndarray) -> float:
    """RMS of [-1, 1] samples (0 for none): what `MIN_SPEECH_RMS` is compared with."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


def num_video_frames(num_samples: int, sample_rate: int = AUDIO_RATE, fps: float = VIDEO_FPS) -> int:
    """Frames of a 25 fps video as long as the audio: every started 40 ms counts (at least one)."""
    return max(1, int(np.ceil(num_samples * fps / sample_rate - 1e-9)))


def mfcc_rows(
    audio: np.ndarray, num_frames: int, config: FeatureConfig = FeatureConfig(), progress: bool = False
) -> np.ndarray:
    """`(4 * (num_frames + 2 * context), num_cepstra)` MFCC rows; rows 4t..4t+4*(2*context+1)-1
    are the window of video frame t. `progress`: a bar over the phone recognition of long speech."""
    sr = config.sample_rate
    step = round(MFCC_STEP * sr)
    window = round(config.window_length * sr)
    frame_samples = sr / VIDEO_FPS
    # Row r (counted from the first row of frame 0's window) is centred at
    # (10 r - 15) ms - context * 40 ms; the padding puts the analysis windows there.
    first_centre = -1.5 * step - config.context * frame_samples
    pad_before = int(round(window / 2 - first_centre))
    num_rows = ROWS_PER_FRAME * (num_frames + 2 * config.context)
    total = (num_rows - 1) * step + window
    body = int(round(num_frames * frame_samples))
    signal = np.zeros(total, np.float64)
    clip = np.asarray(audio).reshape(-1)[:body]
    signal[pad_before : pad_before + len(clip)] = clip[: max(0, total - pad_before)]
    if config.dither:
        rng = np.random.default_rng(0)
        for first in range(0, total, MFCC_CHUNK_ROWS * step):  # the same draws as one call, in place
            part = signal[first : first + MFCC_CHUNK_ROWS * step]
            part += config.dither * rng.standard_normal(len(part))
    # python_speech_features frames the whole signal at once (~15 KB a row, 1.5 MB a second of
    # speech); a chunk of rows at a time keeps memory flat in length. Pre-emphasis is applied here,
    # over the chunk's edge, so the chunks' rows are the rows of one call.
    rows = []
    for first in range(0, num_rows, MFCC_CHUNK_ROWS):
        last = min(first + MFCC_CHUNK_ROWS, num_rows)
        part = signal[max(0, first * step - 1) : (last - 1) * step + window]
        emphasized = part[1:] - PREEMPHASIS * part[:-1]
        if not first:
            emphasized = np.append(part[0], emphasized)
        rows.append(
            mfcc(
                emphasized,
                samplerate=sr,
                winlen=window / sr,
                winstep=step / sr,
                numcep=config.num_cepstra + 1,
                nfft=max(512, 1 << (window - 1).bit_length()),
                preemph=0.0,
                winfunc=np.hamming,
            )[:, 1:]
        )
    rows = np.concatenate(rows)
    if config.normalize:
        rows = (rows - rows.mean(0)) / (rows.std(0) + 1e-5)
    if config.phones:
        rows = np.concatenate([rows, phone_rows(signal, num_rows, sr, progress)], axis=1)
    return rows.astype(np.float32)


def phone_rows(signal: np.ndarray, num_rows: int, sample_rate: int = AUDIO_RATE, progress: bool = False) -> np.ndarray:
    """`(num_rows, 40)` one-hot phones of `signal` on the MFCC grid (PocketSphinx's frames also
    start every 10 ms at sample 0 with a 25.6 ms window, so row i is its frame i)."""
    if sample_rate != AUDIO_RATE:
        raise ValueError(f"phone recognition needs {AUDIO_RATE} Hz audio, got {sample_rate}")
    labels = np.full(num_rows, len(PHONES))
    index = {phone: i for i, phone in enumerate(PHONES)}
    pieces = speech_pieces(signal)  # long speech a piece at a time (flat memory)
    phones = (
        phone
        for start, end in tqdm(pieces, desc="audio features", unit="piece", disable=not progress or len(pieces) == 1)
        for phone in phone_loop(signal[start:end]).shifted(start / sample_rate).phones
    )
    for phone in phones:
        labels[round(phone.start / SPHINX_FRAME) : round(phone.end / SPHINX_FRAME)] = index.get(
            phone.label, len(PHONES)
        )
    return np.eye(len(PHONES) + 1, dtype=np.float32)[labels]


def audio_features(
    audio: np.ndarray, num_frames: int | None = None, config: FeatureConfig = FeatureConfig(), progress: bool = False
) -> np.ndarray:
    """`(T, 28, config.num_columns)` float32 MFCC (+ phone) windows, one per video frame, for mono audio at
    `config.sample_rate`; T = `num_frames`, or the audio's length in 25 fps frames."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (N,), got shape {audio.shape}")
    if num_frames is None:
        num_frames = num_video_frames(len(audio), config.sample_rate)
    rows = mfcc_rows(audio, num_frames, config, progress)
    starts = ROWS_PER_FRAME * np.arange(num_frames)[:, None] + np.arange(config.window_rows)[None]
    return rows[starts]


def load_speech(
    path: str | os.PathLike, num_frames: int | None = None, config: FeatureConfig = FeatureConfig()
) -> tuple[np.ndarray, int]:
    """A speech file's (or a video's soundtrack's) mono audio at `config.sample_rate` and its
    length in video frames (`num_frames` when given: trimmed or padded with silence)."""
    samples = None if num_frames is None else int(round(num_frames * config.sample_rate / VIDEO_FPS))
    audio = read_audio(path, config.sample_rate, samples)
    if len(audio) == 0:
        raise InputError(f"{path}: the audio stream is empty; give a file with speech")
    return audio, num_frames if num_frames is not None else num_video_frames(len(audio), config.sample_rate)
