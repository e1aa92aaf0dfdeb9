"""Blinks and gaze: when the eyes close and where they look, for a new utterance.

The eyes are not driven by the speech's sounds, but they are not independent of it either:
speakers blink preferentially at pauses and phrase boundaries (Nakano & Kitazawa 2010, "Eyeblink
entrainment at breakpoints of speech", Exp. Brain Res. 205: speakers' blinks cluster at the ends
of utterances and at pauses; Cummins 2012, "Gaze and blinking in dyadic conversation", J.
Nonverbal Behav. 36: blinks more likely at turn and phrase boundaries). So blink times are drawn as
a renewal process whose hazard is `BlinkConfig.pause_preference` times higher in the speech's
pauses than inside speech, at the actor's own rate and closure duration, measured from the eye
openness of its footage (`blink_stats`); a photo, or footage that shows fewer than
`BlinkConfig.min_blinks`, takes the corpus prior (`PRIOR_RATE`, `PRIOR_FRAMES`).

Gaze is a sequence of fixations (log-normal durations) joined by saccades (one frame): small
ones about the actor's usual direction, and now and then a look off to the side and back, with
the spread of the actor's own iris positions in its footage.

Eye openness is measured as the eye aspect ratio of the tracked lids (`eye_openness`): the mean of
the two lid-to-lid distances over the corner-to-corner width, both eyes averaged. A blink is a run
of frames below `BLINK_THRESHOLD` of the open eye (its `OPEN_PERCENTILE`th percentile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon3d.landmarks import EYES_IBUG, mesh_to_ibug68

BLINK_THRESHOLD = 0.55
"""A frame is closed when its eye openness is below this fraction of the open eye."""
HALF_CLOSED = 0.75
"""... and half closed below this fraction (held that way for long, it looks sleepy)."""
OPEN_PERCENTILE = 80
"""The open eye: this percentile of a clip's eye openness (blinks are a few percent of frames)."""
PRIOR_RATE = 17.0
"""Blinks a minute for an actor whose footage shows too few: the median of the 20 shared clips'
(docs/eyes.md); Bentivoglio et al. 1997 (Mov. Disord. 12) measured 17 at rest and 26 in conversation."""
RATE_RANGE = (8.0, 32.0)
"""The rates (blinks a minute) a learned rate is kept within: a few seconds of footage count a
squint or a tracker's slip as a blink (hdtf_aoc_8s: 10 in 8 s). Adults in conversation blink
26 +- 16 times a minute (Bentivoglio et al. 1997); the top leaves room for the draws' spread
(16 s drawn at 36 a minute showed 41 on two actors) under 40 a minute."""
PRIOR_FRAMES = 3.0
"""... and frames (at 25 fps) below `BLINK_THRESHOLD` per blink: the shared clips' median (docs/eyes.md)."""
PRIOR_GAZE = 0.03
"""Spread (standard deviation, in eye widths) of the horizontal gaze for an actor whose footage
shows no irises to measure: about the shared clips' median, 0.027 (docs/eyes.md)."""
IRISES_MESH = (468, 473)
"""mediapipe's iris centres (refined mesh), in the order of `EYES_IBUG`."""


@dataclass(frozen=True)
class BlinkConfig:
    blinks: str = "auto"
    """Blinks and gaze: auto, at the actor's own rate (a corpus prior for a photo or footage with
    few blinks), likelier in the speech's pauses; off, none drawn (the eyes as the frames lending
    the face have them); or a number of blinks a minute."""
    min_blinks: int = 3
    """Fewest blinks in the actor's footage to take its rate and duration from (else the prior)."""
    pause_preference: float = 3.0
    """How many times likelier a blink is in a pause of the speech than in speech."""
    min_interval: float = 0.6
    """Shortest time (s) between two blinks' starts."""
    regularity: float = 4.0
    """Shape of the gamma distribution of the intervals between blinks (1: Poisson; higher: more
    even spacing, as people's are over a few seconds)."""
    gaze_fixation: float = 0.9
    """Median time (s) a gaze direction is held."""
    look_away: float = 0.15
    """Chance that a fixation is a look off to the side (four times the usual spread), then back."""
    seed: int = 0
    """Seed of the blink and gaze draws (the same seed and speech give the same eyes)."""

    @property
    def rate(self) -> float | None:
        """Blinks a minute asked for (None: the actor's own; 0: none)."""
        return None if self.blinks == "auto" else 0.0 if self.blinks == "off" else float(self.blinks)

    def __post_init__(self) -> None:
        if self.blinks not in ("auto", "off"):
            try:
                rate = float(self.blinks)
            except ValueError:
                rate = float("nan")
            if not (math.isfinite(rate) and 0 <= rate <= 120):
                raise ValueError(f"blinks are auto, off or a number of blinks a minute (0-120), not {self.blinks!r}")
        for what, value in (("the pause preference", self.pause_preference), ("the regularity", self.regularity)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{what} is a finite number > 0, not {value}")
        if not (0 <= self.look_away <= 1):
            raise ValueError(f"the look-away chance is 0-1, not {self.look_away}")


@dataclass(frozen=True)
class BlinkStats:
    rate: float
    """Blinks a minute."""
    frames: float
    """Median frames below `BLINK_THRESHOLD` per blink."""
    gaze: float
    """Standard deviation of the horizontal gaze, in eye widths."""
    source: str
    """"footage" or "prior"."""


def eye_openness(ibug68: np.ndarray) -> np.ndarray:
    """(T,) eye aspect ratio of (T, 68, 2+) landmarks, both eyes averaged."""
    ratios = []
    for corner, up1, up2, corner2, low1, low2 in EYES_IBUG:
        lids = np.linalg.norm(ibug68[:, [up1, up2], :2] - ibug68[:, [low2, low1], :2], axis=-1).mean(-1)
        ratios.append(lids / np.maximum(np.linalg.norm(ibug68[:, corner, :2] - ibug68[:, corner2, :2], axis=-1), 1e-6))
    return np.mean(ratios, axis=0)


def relative_openness(openness: np.ndarray) -> np.ndarray:
    """(T,) eye openness over the clip's open eye (`OPEN_PERCENTILE`)."""
    return openness / max(float(np.percentile(openness, OPEN_PERCENTILE)), 1e-6)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in the (T,) bool `mask`."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def find_blinks(openness: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frames of each blink (a run below `BLINK_THRESHOLD` of the open eye)."""
    return runs(relative_openness(openness) < BLINK_THRESHOLD)


def eye_scores(openness: np.ndarray, fps: float) -> dict[str, float]:
    """What `talkface evaluate` reports of a clip's (T,) eye openness: `blink_rate` (a minute),
    `blink_ms` (median duration below the threshold), `half_closed_ms` (the longest run below
    `HALF_CLOSED` of the open eye; over 400 ms is a held, sleepy eye rather than a blink) and
    `eye_steps` (frame-to-frame changes of over a fifth of the open eye, a minute, outside blinks:
    an eye that jumps between held frames)."""
    relative = relative_openness(openness)
    blinks = find_blinks(openness)
    minutes = len(openness) / fps / 60
    durations = [end - start for start, end in blinks]
    in_blink = np.zeros(len(openness), bool)
    for start, end in runs(relative < HALF_CLOSED):
        if any(start <= b < end for b, _ in blinks):
            in_blink[max(start - 1, 0) : end + 1] = True
    jumps = np.abs(np.diff(relative)) > 0.2
    steps = int((jumps & ~in_blink[1:] & ~in_blink[:-1]).sum())
    half = [end - start for start, end in runs(relative < HALF_CLOSED)]
    return {
        "blink_rate": len(blinks) / minutes if minutes > 0 else float("nan"),
        "blink_ms": float(np.median(durations)) * 1000 / fps if durations else float("nan"),
        "half_closed_ms": max(half, default=0) * 1000 / fps,
        "eye_steps": steps / minutes if minutes > 0 else float("nan"),
    }


def gaze_offsets(mesh: np.ndarray) -> np.ndarray | None:
    """(T,) horizontal iris position within the eye, in eye widths from the eye's centre (both
    eyes averaged), of (T, 478, 2+) mediapipe landmarks; None without irises (468 points)."""
    if mesh.shape[1] <= max(IRISES_MESH):
        return None
    ibug = mesh_to_ibug68(mesh)
    offsets = []
    for eye, iris in zip(EYES_IBUG, IRISES_MESH):
        a, b = ibug[:, eye[0], :2], ibug[:, eye[3], :2]
        axis = b - a
        width = np.maximum(np.linalg.norm(axis, axis=-1), 1e-6)
        # Along the corner-to-corner axis, towards the second corner (the same side of the
        # image for both eyes, as iBUG orders both eyes' corners left to right).
        offsets.append(((mesh[:, iris, :2] - (a + b) / 2) * axis).sum(-1) / width**2)
    return np.mean(offsets, axis=0)


def blink_stats(
    ibug68: np.ndarray, fps: float, mesh: np.ndarray | None = None, config: BlinkConfig = BlinkConfig()
) -> BlinkStats:
    """The actor's blink rate, duration and gaze spread from its footage's unsmoothed (T, 68, 2)
    landmarks (and (T, 478, 2+) mesh for the irises); the priors where it shows too little."""
    gaze = gaze_offsets(mesh) if mesh is not None and len(mesh) > 1 else None
    spread = float(np.std(gaze)) if gaze is not None else PRIOR_GAZE
    blinks = find_blinks(eye_openness(ibug68)) if len(ibug68) > 1 else []
    if len(blinks) < config.min_blinks:
        return BlinkStats(PRIOR_RATE, PRIOR_FRAMES * fps / 25, spread if gaze is not None else PRIOR_GAZE, "prior")
    rate = float(np.clip(len(blinks) / (len(ibug68) / fps / 60), *RATE_RANGE))
    return BlinkStats(rate, float(np.median([end - start for start, end in blinks])), spread, "footage")


def speech_pauses(audio: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """(T,) bool: the frames in a pause of the speech (loudness 30 dB under the speech's loud
    frames for at least 0.15 s); the edges of the audio count as pauses."""
    hop = sample_rate / fps
    loudness = np.array(
        [
            np.sqrt(np.mean(np.square(audio[int(t * hop) : int((t + 1) * hop)], dtype=np.float64)) + 1e-12)
            for t in range(num_frames)
        ]
    )
    db = 20 * np.log10(loudness + 1e-9)
    quiet = db < np.percentile(db, 90) - 30 if num_frames else np.zeros(0, bool)
    pauses = np.zeros(num_frames, bool)
    for start, end in runs(quiet):
        if end - start >= 0.15 * fps or start == 0 or end == num_frames:
            pauses[start:end] = True
    return pauses


def blink_profile(frames: float) -> np.ndarray:
    """Lid closure (0 open, 1 shut) per frame of one blink about `frames` frames below the
    threshold: closing in one frame, shut, then opening more slowly (lids fall faster than they
    rise: Evinger et al. 1991, Invest. Ophthalmol. Vis. Sci. 32). Shut for at least two frames
    (80 ms): footage at 25 fps catches a blink's trough in one frame or two, and a lid shut for
    one frame reads as a flicker."""
    shut = max(int(round(frames)) - 1, 2)
    return np.r_[0.45, np.ones(shut), 0.7, 0.35, 0.12].astype(np.float32)


def plan_blinks(pauses: np.ndarray, fps: float, stats: BlinkStats, config: BlinkConfig = BlinkConfig()) -> np.ndarray:
    """(T,) lid closure per output frame (`pauses`: (T,) bool, the speech's pauses)."""
    rng = np.random.default_rng(config.seed)
    num_frames = len(pauses)
    closure = np.zeros(num_frames, np.float32)
    rate = stats.rate if config.rate is None else config.rate
    if rate <= 0 or num_frames == 0:
        return closure
    profile = blink_profile(stats.frames)
    # Hazard per frame, the pauses favoured, its mean the rate.
    weight = np.where(pauses, config.pause_preference, 1.0)
    weight /= weight.mean()
    mean_interval = 60 * fps / rate
    shape = config.regularity
    # Each interval: a gamma draw of "rate-weighted frames"; the blink falls where the weights
    # summed since the last one reach it (more weight in pauses: reached sooner there).
    need = rng.uniform(0.2, 1.0) * mean_interval  # the first blink's phase
    accumulated, last = 0.0, -np.inf
    for t in range(num_frames):
        accumulated += weight[t]
        if accumulated >= need and t - last >= config.min_interval * fps:
            end = min(t + len(profile), num_frames)
            closure[t:end] = np.maximum(closure[t:end], profile[: end - t])
            last, accumulated = t, 0.0
            need = rng.gamma(shape, mean_interval / shape)
    return closure


def plan_gaze(num_frames: int, fps: float, stats: BlinkStats, config: BlinkConfig = BlinkConfig()) -> np.ndarray:
    """(T,) horizontal gaze per output frame, in eye widths from the actor's usual direction."""
    rng = np.random.default_rng(config.seed + 1)
    gaze = np.zeros(num_frames, np.float32)
    t = 0
    while t < num_frames:
        hold = max(int(round(fps * config.gaze_fixation * rng.lognormal(0.0, 0.5))), 2)
        if rng.random() < config.look_away:
            offset = rng.choice([-1.0, 1.0]) * 4 * stats.gaze
        else:
            offset = rng.normal(0.0, stats.gaze)
        gaze[t : t + hold] = offset
        t += hold
    return gaze


def plan_eyes(
    audio: np.ndarray, sample_rate: int, num_frames: int, fps: float, stats: BlinkStats, config: BlinkConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """(T,) lid closure and (T,) gaze per output frame for the speech `audio`; None with blinks off."""
    if config.blinks == "off":
        return None
    pauses = speech_pauses(audio, sample_rate, num_frames, fps)
    return plan_blinks(pauses, fps, stats, config), plan_gaze(num_frames, fps, stats, config)
