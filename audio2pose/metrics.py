"""How well predicted motion matches real motion (the definitions of ../shared/DESIGN.md).

- Mouth opening: the inner-lip aperture (mean distance of the three facing upper/lower inner-lip
  landmark pairs over the outer-eye-corner distance), of the face model's mesh in model space (head
  pose and camera play no part) or of tracked 2D landmarks. Lip sync is the Pearson r of the
  predicted and the real aperture series.
- LMD, mouth landmark distance: the 20 iBUG mouth landmarks of each frame, roll removed (eye line
  level), centred on their mean and divided by the outer-eye-corner distance; the mean distance
  between corresponding generated and real points over points and frames. Mouth shape only: where
  the head is plays no part.
- Head-pose similarity (HS): per Euler angle in degrees, the Wasserstein-1 distance W1 between
  the real and the generated per-frame distributions; HS_angle = max(0, 1 - W1 / 10 degrees);
  HS is the mean over the three angles. Its baselines: a static head (the mean training pose) and
  the training poses replayed. Velocity W1: the same distance between the distributions of the
  frame-to-frame angle changes (degrees per second): how alike the motion's speed is.
- Articulation (`articulation_scores`), of a mouth-opening series against the phones of its
  speech with their timings: the bilabial closure rate (the share of p/b/m whose frames, from
  `CLOSURE_EARLY` s before to `CLOSURE_LATE` s after the phone, reach a closed mouth: an aperture
  at most `CLOSED_FRACTION` of the clip's median open-vowel aperture); the open/closed contrast
  (Michelson: (open - closed) / (open + closed) of the mean aperture over open-vowel frames and
  the mean of each bilabial's least aperture); r with the phones' openness
  (`audio2pose.visemes.phone_openness`) at the best lag within +-`MAX_LAG` frames, and that lag
  (positive: the mouth leads the sound), at which the open vowels' frames are read.
- Voice: speaker similarity is the cosine of two GE2E speaker embeddings (resemblyzer: about
  0.94 for the same voice, 0.59 for different ones); intelligibility is the word error rate of
  PocketSphinx's bundled US-English recogniser against the words that were said.
"""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import torch
from pocketsphinx import Decoder
from scipy.stats import wasserstein_distance

from audio2pose.phones import PhoneTimings
from audio2pose.visemes import BILABIALS, OPEN_VOWELS, frame_times, phone_openness
from recon3d.facemodel import FaceModel
from recon3d.landmarks import EYE_OUTER_CORNERS_IBUG, INNER_LIP_PAIRS_IBUG, MOUTH_IBUG
from recon3d.video import AUDIO_RATE

ANGLE_NAMES = ("pitch", "yaw", "roll")
HS_SCALE_DEGREES = 10.0


def landmark_aperture(ibug68: np.ndarray) -> np.ndarray:
    """`(T,)` inner-lip aperture over the outer-eye-corner distance of `(T, 68, D)` landmarks (D = 2
    tracked pixels, or 3 model-space points)."""
    upper, lower = (list(side) for side in zip(*INNER_LIP_PAIRS_IBUG))
    gap = np.linalg.norm(ibug68[:, upper] - ibug68[:, lower], axis=-1).mean(-1)
    a, b = EYE_OUTER_CORNERS_IBUG
    return gap / np.linalg.norm(ibug68[:, a] - ibug68[:, b], axis=-1)


@torch.no_grad()
def mouth_aperture(model: FaceModel, id: torch.Tensor, exp: torch.Tensor) -> np.ndarray:
    """`(T,)` inner-lip aperture over the eye-corner distance, for one identity `(id_dim,)` and
    `(T, exp_dim)` expressions."""
    return landmark_aperture(model.landmarks(model.shape(id[None].to(exp), exp)).cpu().numpy())


def normalised_mouth(ibug68: np.ndarray) -> np.ndarray:
    """`(T, 20, 2)` mouth landmarks of `(T, 68, 2)` ones: roll removed, centred, in eye-corner units."""
    a, b = EYE_OUTER_CORNERS_IBUG
    eye = ibug68[:, b] - ibug68[:, a]  # (T, 2)
    distance = np.linalg.norm(eye, axis=-1)
    cos, sin = eye[:, 0] / distance, eye[:, 1] / distance
    rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # (T, 2, 2): eye line to +x
    mouth = ibug68[:, MOUTH_IBUG] - ibug68[:, MOUTH_IBUG].mean(1, keepdims=True)
    return np.einsum("tij,tpj->tpi", rotation, mouth) / distance[:, None, None]


def mouth_landmark_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """LMD of two `(T, 68, 2)` landmark series, frame by frame over the shorter one's length."""
    n = min(len(real), len(generated))
    return float(np.linalg.norm(normalised_mouth(real[:n]) - normalised_mouth(generated[:n]), axis=-1).mean())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either series is constant (it predicts no change)."""
    a, b = np.asarray(a, np.float64) - np.mean(a), np.asarray(b, np.float64) - np.mean(b)
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 1e-12 else 0.0


def pose_similarity(real_degrees: np.ndarray, generated_degrees: np.ndarray) -> dict[str, float]:
    """W1 (degrees) and HS per angle and HS overall, for `(T, 3)` pitch/yaw/roll series (the two
    may differ in length: only the distributions are compared)."""
    result: dict[str, float] = {}
    for i, name in enumerate(ANGLE_NAMES):
        w1 = float(wasserstein_distance(real_degrees[:, i], generated_degrees[:, i]))
        result[f"w1_{name}"] = w1
        result[f"hs_{name}"] = max(0.0, 1.0 - w1 / HS_SCALE_DEGREES)
    result["hs"] = float(np.mean([result[f"hs_{name}"] for name in ANGLE_NAMES]))
    return result


def velocity_w1(real_degrees: np.ndarray, generated_degrees: np.ndarray, fps: float) -> dict[str, float]:
    """`velocity_w1_<angle>`: W1 (degrees per second) between the real and the generated
    distributions of frame-to-frame angle change, for `(T, 3)` series at `fps`; NaN where either
    has a single frame (no motion to compare, as a photo actor's replayed training poses)."""
    real, generated = np.diff(real_degrees, axis=0) * fps, np.diff(generated_degrees, axis=0) * fps
    return {
        f"velocity_w1_{name}": float(wasserstein_distance(real[:, i], generated[:, i]))
        if len(real) and len(generated)
        else float("nan")
        for i, name in enumerate(ANGLE_NAMES)
    }


def pose_baselines(real_degrees: np.ndarray, train_degrees: np.ndarray, fps: float | None = None) -> dict[str, float]:
    """`static_*` and `replay_*` HS and W1 (and velocity W1 given `fps`) of the real `(T, 3)` angles
    against a still head at the training frames' mean pose and against the training frames'
    `(N, 3)` angles replayed."""
    still = np.repeat(train_degrees.mean(0, keepdims=True), len(real_degrees), 0)
    result = {}
    for name, generated in (("static", still), ("replay", train_degrees)):
        scores = pose_similarity(real_degrees, generated)
        if fps is not None:
            scores |= velocity_w1(real_degrees, generated, fps)
        result |= {f"{name}_{key}": value for key, value in scores.items()}
    return result


CLOSURE_EARLY = 0.12
"""Seconds before a bilabial's sound in which its closure may come (anticipation)."""
CLOSURE_LATE = 0.04
"""... and after its end."""
CLOSED_FRACTION = 0.25
"""A mouth this open, or less, relative to the median open vowel's, counts as closed."""
MAX_LAG = 5
"""Frames of lead or lag searched for the openness correlation."""


def articulation_scores(aperture: np.ndarray, timings: PhoneTimings, fps: float = 25.0) -> dict[str, float]:
    """`closure_rate`, `contrast`, `openness_r` and `openness_lag` (frames, + = mouth first) of a
    `(T,)` aperture series for speech with phone timings. The open vowels' aperture is read at
    that lag (a mouth leading the sound by a frame is already closing for the next consonant at
    the end of a short vowel's sound). NaN where the speech has no bilabial or no open vowel."""
    aperture = np.asarray(aperture, np.float64)
    times = frame_times(len(aperture), fps)
    openness = phone_openness(timings, len(aperture), fps)
    lags = range(-MAX_LAG, MAX_LAG + 1)
    # lag k: the mouth at frame t against the sound at frame t + k.
    rs = [
        pearson(aperture[max(0, -k) : len(aperture) - max(0, k)], openness[max(0, k) : len(openness) - max(0, -k)])
        for k in lags
    ]
    best = int(np.argmax(rs))
    lag = list(lags)[best]
    open_frames = np.zeros(len(aperture), bool)
    for phone in timings.phones:
        if phone.label in OPEN_VOWELS:
            open_frames |= (times >= phone.start - lag / fps) & (times < phone.end - lag / fps)
    opened = float(aperture[open_frames].mean()) if open_frames.any() else float("nan")
    closed_at = CLOSED_FRACTION * float(np.median(aperture[open_frames])) if open_frames.any() else float("nan")
    least = []
    for phone in timings.phones:
        if phone.label in BILABIALS:
            frames = (times >= phone.start - CLOSURE_EARLY) & (times <= phone.end + CLOSURE_LATE)
            if frames.any():
                least.append(float(aperture[frames].min()))
    closed = float(np.mean(least)) if least else float("nan")
    return {
        "closure_rate": float(np.mean(np.array(least) <= closed_at)) if least else float("nan"),
        "contrast": (opened - closed) / (opened + closed) if least and open_frames.any() else float("nan"),
        "openness_r": float(rs[best]),
        "openness_lag": float(lag),
    }


@functools.cache
def _speaker_encoder():
    with warnings.catch_warnings():
        # resemblyzer imports scipy.ndimage.morphology, its webrtcvad pkg_resources: both deprecated.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from resemblyzer import VoiceEncoder, preprocess_wav
    return VoiceEncoder("cpu", verbose=False), preprocess_wav


def speaker_embedding(audio: np.ndarray) -> np.ndarray:
    """`(256,)` unit-length GE2E embedding of 16 kHz speech (its silences trimmed first)."""
    encoder, preprocess = _speaker_encoder()
    return encoder.embed_utterance(preprocess(np.asarray(audio, np.float32), AUDIO_RATE))


def transcribe(utterances: list[np.ndarray]) -> list[str]:
    """PocketSphinx's lower-case words for each 16 kHz utterance. One fresh decoder per call: it
    adapts to the speaker over the utterances, and nothing carries over from other calls."""
    decoder = Decoder(samprate=AUDIO_RATE, loglevel="ERROR")
    texts = []
    for audio in utterances:
        decoder.start_utt()
        decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        texts.append(decoder.hyp().hypstr.lower() if decoder.hyp() else "")
    return texts


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the number of reference words."""
    ref, hyp = words(reference), words(hypothesis)
    distance = np.arange(len(hyp) + 1)
    for i, word in enumerate(ref, 1):
        previous, distance = distance, np.empty_like(distance)
        distance[0] = i
        for j in range(1, len(hyp) + 1):
            distance[j] = min(previous[j] + 1, distance[j - 1] + 1, previous[j - 1] + (word != hyp[j - 1]))
    return float(distance[-1]) / max(1, len(ref))
