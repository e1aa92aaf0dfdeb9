"""Phones -> visemes -> per-frame viseme weights, with coarticulation and timing rules.

Visemes: the 15 of the Oculus/MPEG-4-style sets that lip-sync rigs use (Rhubarb Lip Sync, JALI,
ARKit-driven avatars work the same way): a mouth shape per group of phones that look alike.

Timing (`viseme_weights`), each rule from the speech-production literature:
- Anticipation: the mouth moves before the sound it shapes. Visible articulation leads the
  acoustic onset by 20-120 ms in running speech (Schwartz & Savariaux 2014, PLoS Comput Biol
  10(7)); `VisemeConfig.lead` (60 ms) shifts every target that much earlier.
- Coarticulation: each phone's shape has a dominance over time (Cohen & Massaro 1993): a plateau
  over the phone (a peak at its middle for the weak shapes below) and a Gaussian tail of
  `spread` either side; a frame's shape is the
  dominance-weighted mean of the phones around it. Tongue-articulated consonants (t d n l s z k g
  ng r y hh) barely use the lips and take the neighbouring vowels' shape (low dominance: "lips of
  /t/ in 'tea' are spread, in 'two' rounded", Benguerel & Cowan 1974); vowels, labials and
  pauses dominate. The jaw still rises for them, /s/ most (its teeth nearly meet), so their
  dominance is not nil.
- Closures: p, b, m are made by closing the lips, always, however short the phone (Löfqvist &
  Gracco 1997: bilabial closures of 60-120 ms in running speech). Every frame inside a shifted
  bilabial phone, and at least the `closure_hold` frames nearest its middle, are fully closed
  (weight 1 on PP); f, v put the lower lip to the teeth the same way (FF at `labiodental_weight`).
- No flicker: the weights are a smooth function of time (dominance tails of `spread`), averaged
  over each frame's 1/fps, and a held closure lasts at least `closure_hold` frames (80 ms: two
  video frames), never one alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio2pose.phones import SILENCE, PhoneTimings

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
PHONE_VISEMES = {
    SILENCE: "sil",
    "P": "PP",
    "B": "PP",
    "M": "PP",
    "F": "FF",
    "V": "FF",
    "TH": "TH",
    "DH": "TH",
    "T": "DD",
    "D": "DD",
    "K": "kk",
    "G": "kk",
    "NG": "kk",
    "HH": "kk",
    "CH": "CH",
    "JH": "CH",
    "SH": "CH",
    "ZH": "CH",
    "S": "SS",
    "Z": "SS",
    "N": "nn",
    "L": "nn",
    "R": "RR",
    "ER": "RR",
    "AA": "aa",
    "AE": "aa",
    "AH": "aa",
    "AY": "aa",
    "AW": "aa",
    "EH": "E",
    "EY": "E",
    "IH": "ih",
    "IY": "ih",
    "Y": "ih",
    "AO": "oh",
    "OW": "oh",
    "OY": "oh",
    "UH": "ou",
    "UW": "ou",
    "W": "ou",
}
"""CMU phone -> viseme (the Oculus grouping; HH, made at the glottis, grouped with the velars)."""
OPENNESS = {
    "sil": 0.0,
    "PP": 0.0,
    "FF": 0.1,
    "TH": 0.25,
    "DD": 0.3,
    "kk": 0.3,
    "CH": 0.2,
    "SS": 0.15,
    "nn": 0.25,
    "RR": 0.3,
    "aa": 1.0,
    "E": 0.7,
    "ih": 0.45,
    "oh": 0.8,
    "ou": 0.35,
}
"""How far the lips part for each viseme, 0 closed to 1 an open /a/ (a plain table, as Rhubarb's
mouth shapes A-H): the reference the articulation benchmark correlates against."""
DOMINANCE = {
    "sil": 1.0,
    "PP": 1.0,
    "FF": 1.0,
    "TH": 0.7,
    "DD": 0.6,
    "kk": 0.4,
    "CH": 0.8,
    "SS": 0.8,
    "nn": 0.5,
    "RR": 0.6,
    "aa": 1.0,
    "E": 1.0,
    "ih": 1.0,
    "oh": 1.0,
    "ou": 1.0,
}
"""How strongly each viseme holds the lips against its neighbours (see the module docstring)."""
BILABIALS = frozenset({"P", "B", "M"})
SUBSAMPLES = 4
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})


@dataclass(frozen=True)
class VisemeConfig:
    lead: float = 0.06
    """Seconds the mouth leads the sound (20-120 ms measured)."""
    spread: float = 0.04
    """Seconds of each phone's dominance tail (coarticulation reach; 30-80 ms measured, docs/benchmarks.md)."""
    closure_hold: int = 2
    """Fewest frames a bilabial closure is held."""
    labiodental_weight: float = 0.8
    """Weight of FF on the frames of an f/v."""


def frame_times(num_frames: int, fps: float) -> np.ndarray:
    """Video frame t shows the time t / fps (as `audio2pose.features`' windows)."""
    return np.arange(num_frames) / fps


def viseme_weights(
    timings: PhoneTimings, num_frames: int, fps: float = 25.0, config: VisemeConfig = VisemeConfig()
) -> np.ndarray:
    """`(T, len(VISEMES))` per-frame viseme weights (rows sum to 1) for phones with their timings;
    frames before the first and after the last phone are silence."""
    times = frame_times(num_frames, fps)
    index = {v: i for i, v in enumerate(VISEMES)}
    # Each frame's weights are averaged over SUBSAMPLES instants of its 1/fps (as an exposure
    # integrates), so that a shape's course does not alias against the frame grid.
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES - 0.5
    instants = (times[:, None] + offsets[None] / fps).reshape(-1)
    dominance = np.zeros((len(instants), len(VISEMES)))
    dominance[:, index["sil"]] = 1e-6  # where no phone reaches, the mouth rests
    for phone in timings.phones:
        viseme = PHONE_VISEMES[phone.label]
        start, end = phone.start - config.lead, phone.end - config.lead
        if DOMINANCE[viseme] < 1.0:  # a weak shape peaks mid-phone, so its neighbours dip once into it
            start = end = 0.5 * (start + end)
        outside = np.maximum(0.0, np.maximum(start - instants, instants - end))
        dominance[:, index[viseme]] += DOMINANCE[viseme] * np.exp(-0.5 * (outside / config.spread) ** 2)
    weights = (dominance / dominance.sum(1, keepdims=True)).reshape(num_frames, SUBSAMPLES, -1).mean(1)
    for phone in timings.phones:
        if phone.label in BILABIALS:
            _hold(
                weights,
                times,
                phone.start - config.lead,
                phone.end - config.lead,
                index["PP"],
                1.0,
                config.closure_hold,
            )
        elif PHONE_VISEMES[phone.label] == "FF":
            _hold(
                weights,
                times,
                phone.start - config.lead,
                phone.end - config.lead,
                index["FF"],
                config.labiodental_weight,
                1,
            )
    return weights


def _hold(
    weights: np.ndarray, times: np.ndarray, start: float, end: float, viseme: int, weight: float, min_frames: int
) -> None:
    """Puts `weight` on `viseme` (the rest scaled to 1 - weight) on the frames inside [start, end],
    and on at least the `min_frames` frames nearest its middle."""
    inside = set(np.nonzero((times >= start) & (times <= end))[0].tolist())
    nearest = np.argsort(np.abs(times - 0.5 * (start + end)), kind="stable")[:min_frames]
    for frame in inside | set(nearest.tolist()):
        rest = weights[frame].copy()
        rest[viseme] = 0.0
        total = rest.sum()
        weights[frame] = rest * ((1 - weight) / total) if total > 0 else rest
        weights[frame, viseme] += weight if total > 0 else 1.0


def viseme_openness(weights: np.ndarray) -> np.ndarray:
    """`(T,)` the openness table (`OPENNESS`) under per-frame viseme weights."""
    return weights @ np.array([OPENNESS[v] for v in VISEMES])


def phone_openness(timings: PhoneTimings, num_frames: int, fps: float = 25.0) -> np.ndarray:
    """`(T,)` the phones' own openness at the sound (no lead, no coarticulation): per frame the
    `OPENNESS` of the phones heard in its 1/fps window, weighted by overlap."""
    times = frame_times(num_frames, fps)
    lo, hi = times - 0.5 / fps, times + 0.5 / fps
    total = np.zeros(num_frames)
    for phone in timings.phones:
        overlap = np.clip(np.minimum(hi, phone.end) - np.maximum(lo, phone.start), 0, None)
        total += overlap * OPENNESS[PHONE_VISEMES[phone.label]]
    return total * fps  # uncovered time counts as silence (openness 0)


def pause_weights(
    timings: PhoneTimings, num_frames: int, fps: float = 25.0, config: VisemeConfig = VisemeConfig()
) -> np.ndarray:
    """`(T,)` how much each frame is a pause: the silence viseme's weight (1 between phrases, 0 in a word)."""
    return viseme_weights(timings, num_frames, fps, config)[:, VISEMES.index("sil")]
