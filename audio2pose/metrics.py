"""How well predicted motion matches real motion (the definitions of ../shared/DESIGN.md).

- Mouth opening: the inner-lip aperture of the face model's mesh (mean distance of the three
  facing upper/lower inner-lip landmark pairs over the outer-eye-corner distance), in model space,
  so head pose and camera play no part. Lip sync is the Pearson r of the predicted and the real
  aperture series.
- Head-pose similarity (HS): per Euler angle in degrees, the Wasserstein-1 distance W1 between
  the real and the generated per-frame distributions; HS_angle = max(0, 1 - W1 / 10 degrees);
  HS is the mean over the three angles.
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

from recon3d.facemodel import FaceModel
from recon3d.landmarks import EYE_OUTER_CORNERS_IBUG, INNER_LIP_PAIRS_IBUG
from recon3d.video import AUDIO_RATE

ANGLE_NAMES = ("pitch", "yaw", "roll")
HS_SCALE_DEGREES = 10.0


@torch.no_grad()
def mouth_aperture(model: FaceModel, id: torch.Tensor, exp: torch.Tensor) -> np.ndarray:
    """`(T,)` inner-lip aperture over the eye-corner distance, for one identity `(id_dim,)` and
    `(T, exp_dim)` expressions."""
    landmarks = model.landmarks(model.shape(id[None].to(exp), exp))
    upper, lower = (torch.tensor(side) for side in zip(*INNER_LIP_PAIRS_IBUG))
    gap = (landmarks[:, upper] - landmarks[:, lower]).norm(dim=-1).mean(-1)
    a, b = EYE_OUTER_CORNERS_IBUG
    return (gap / (landmarks[:, a] - landmarks[:, b]).norm(dim=-1)).cpu().numpy()


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
