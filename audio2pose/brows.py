"""Brow raises on the speech's emphasis, at the actor's own rate and height.

Speakers raise their brows with prosodic emphasis: raises cluster on pitch accents, the
stressed, louder and higher syllables (Flecha-Garcia 2010, "Eyebrow raises in dialogue and their
relation to discourse structure, utterance function and pitch accents in English", Speech
Communication 52; Cavé et al. 1996, ICSLP: raises go with rising F0). So the emphasis of each
frame is its loudness plus its pitch, both standardised over the voiced frames (`emphasis`), and
the raises go on its strongest peaks, as many as the actor's rate asks for (`plan_brows`).

A raise is a move along the face model's brow direction (`brow_direction`: the expression that
lifts the brow landmarks and moves the other landmarks least), whose height and rate are measured
in the actor's own tracked footage (`brow_heights`, `brow_stats`: the fitted expressions hardly
move the brows, 0.004 eye-corner distances on seven clips, where the tracked brows rise 0.02-0.08);
a photo, or footage with too few raises, takes a prior. The network's own expression keeps
whatever brow motion it predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyworld
from scipy.signal import find_peaks

from recon3d.facemodel import FaceModel
from recon3d.landmarks import BROWS_IBUG, EYES_IBUG

RAISE_HEIGHT, RAISE_PROMINENCE = 0.02, 0.015
"""A raise in footage: the brows at least this far (eye-corner distances) above their median
height, and this far above the frames around."""
PRIOR_RATE = 30.0
"""Raises a minute for an actor whose footage shows too few: the median of the 16 shared clips
that show two or more (docs/eyes.md)."""
PRIOR_HEIGHT = 0.04
"""... and their height, in eye-corner distances: their median, 0.042 (docs/eyes.md)."""
RAISE_SECONDS = (0.15, 0.25, 0.35)
"""A raise's rise, hold and fall (s)."""


@dataclass(frozen=True)
class BrowStats:
    rate: float
    """Raises a minute."""
    height: float
    """Peak height of a raise, in eye-corner distances."""
    source: str
    """"footage" or "prior"."""


def brow_direction(model: FaceModel, lift: float = 1.0) -> np.ndarray:
    """(K,) the expression that lifts the brow landmarks by `lift` eye-corner distances (model
    space, up) while moving the other landmarks least (ridge least squares on the landmarks'
    expression basis)."""
    basis = model.exp_basis[model.landmark_idx].double().cpu().numpy()  # (68, 3, K)
    mean = model.landmarks(model.mean_shape[None])[0].double().cpu().numpy()
    eyes = float(np.linalg.norm(mean[36] - mean[45]))
    target = np.zeros((68, 3))
    target[np.ravel(BROWS_IBUG), 1] = lift * eyes
    a, b = basis.reshape(-1, basis.shape[2]), target.reshape(-1)
    gram = a.T @ a
    d = np.linalg.solve(gram + 1e-3 * np.trace(gram) / len(gram) * np.eye(len(gram)), a.T @ b)
    return d.astype(np.float32)


def brow_heights(ibug68: np.ndarray) -> np.ndarray:
    """(T,) how high the brows sit above the eyes in (T, 68, 2) tracked landmarks (image y
    down), in eye-corner distances."""
    eyes = np.linalg.norm(ibug68[:, 36, :2] - ibug68[:, 45, :2], axis=-1)
    return (ibug68[:, np.ravel(EYES_IBUG), 1].mean(1) - ibug68[:, np.ravel(BROWS_IBUG), 1].mean(1)) / np.maximum(
        eyes, 1e-6
    )


def brow_stats(heights: np.ndarray, fps: float, min_raises: int = 2) -> BrowStats:
    """Rate and height of the raises in an actor's footage, from its (T,) `brow_heights`
    (unsmoothed): peaks at least `RAISE_HEIGHT` above the median and `RAISE_PROMINENCE` above
    their surroundings, 0.5 s apart; the prior with fewer than `min_raises`."""
    prior = BrowStats(PRIOR_RATE, PRIOR_HEIGHT, "prior")
    if len(heights) < fps:
        return prior
    rise = heights - float(np.median(heights))
    peaks, _ = find_peaks(rise, height=RAISE_HEIGHT, prominence=RAISE_PROMINENCE, distance=max(int(0.5 * fps), 1))
    if len(peaks) < min_raises:
        return prior
    return BrowStats(len(peaks) / (len(heights) / fps / 60), float(np.median(rise[peaks])), "footage")


def emphasis(audio: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """(T,) per frame: standardised loudness plus standardised pitch (WORLD's DIO + StoneMask),
    both over the voiced frames (loud ones, within 25 dB of the loudest tenth, with a pitch);
    elsewhere at most their loudness's. (pyworld rather than librosa's YIN: librosa's first call
    imports for seconds; docs/eyes.md#brows.)"""
    hop = int(round(sample_rate / fps))
    samples = np.zeros(num_frames * hop)
    kept = min(len(audio), len(samples))
    samples[:kept] = audio[:kept]
    # RMS over two hops centred on each frame.
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(samples, hop), 2 * hop)[::hop][:num_frames]
    loud = 20 * np.log10(np.sqrt(np.mean(windows**2, axis=1)) + 1e-6)
    f0, times = pyworld.dio(samples, sample_rate, f0_floor=65.0, f0_ceil=400.0, frame_period=1000.0 / fps)
    f0 = pyworld.stonemask(samples, f0, times, sample_rate)[:num_frames]  # dio: one value per frame, and one past
    voiced = (loud > np.percentile(loud, 90) - 25) & (f0 > 0)
    score = np.zeros(num_frames)
    if voiced.sum() < 3:
        return score
    standard = lambda x, ref: (x - ref.mean()) / (ref.std() + 1e-6)  # noqa: E731
    pitch = np.log2(f0[voiced])
    score[voiced] = standard(loud[voiced], loud[voiced]) + standard(pitch, pitch)
    score[~voiced] = np.minimum(standard(loud[~voiced], loud[voiced]), 0)
    return score


def raise_profile(fps: float) -> np.ndarray:
    """One raise, 0 to 1 and back (cosine ramps), per frame."""
    rise, hold, fall = (max(int(round(s * fps)), 1) for s in RAISE_SECONDS)
    up = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, rise + 1) / rise)
    down = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, fall + 1) / fall)
    return np.r_[up, np.ones(hold), down].astype(np.float32)


def plan_brows(score: np.ndarray, fps: float, stats: BrowStats) -> np.ndarray:
    """(T,) brow lift (eye-corner distances) per output frame: raises peaking at the
    strongest peaks of the (T,) `emphasis` score, the actor's rate of them (at least one in
    speech of over two seconds with a peak), each its height."""
    num_frames = len(score)
    heights = np.zeros(num_frames, np.float32)
    peaks, props = find_peaks(score, height=1.0, distance=max(int(1.0 * fps), 1))
    wanted = int(round(stats.rate * num_frames / fps / 60))
    if num_frames > 2 * fps:
        wanted = max(wanted, 1)
    chosen = peaks[np.argsort(props["peak_heights"])[::-1][:wanted]] if len(peaks) else peaks
    profile = raise_profile(fps)
    top = len(profile) - int(round(RAISE_SECONDS[2] * fps)) - int(round(RAISE_SECONDS[1] * fps)) // 2
    for peak in chosen:
        start = peak - top
        for k, value in enumerate(profile):
            if 0 <= start + k < num_frames:
                heights[start + k] = max(heights[start + k], stats.height * value)
    return heights
