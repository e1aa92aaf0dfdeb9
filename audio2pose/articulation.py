"""Phone-driven mouth motion: viseme weights -> the face model's expression coefficients.

The audio2pose network cannot learn articulation from ten seconds of an actor (docs/benchmarks.md, audio2pose
benchmark: mouth r 0.19); phones carry it. A frame's mouth is

    closed + openness(t) (open - closed) + sum_v w_v(t) detail_v

with `audio2pose.visemes` giving the weights w and the openness, and the actor's `MouthShapes`:
their closed and open mouths (the means of their least and most open frames: no phones needed)
and per-viseme details (rounding, lip to teeth: what openness does not say), each learned from
their aligned footage and shrunk to the face model's prior by how often it was seen. Only the
mouth part of that expression is used (`mouth_projection`): the rest of the face (brows, eyes,
cheeks) stays the network's.

Priors per face model: ICT-FaceKit's expressions are ARKit blendshapes, so its prior is a table
of blendshape weights per viseme (`ICT_VISEMES`, as ARKit-driven avatars are rigged); other
models (built-in, BFM) learn theirs from a corpus (`corpus_prior`, written by
`scripts/train_general_audio2pose.py` beside the general model). A photo actor has only the
prior's closed and open mouths and details, on the photo's own face.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from audio2pose.general import models_dir
from audio2pose.metrics import landmark_aperture
from audio2pose.phones import PhoneTimings
from audio2pose.visemes import VISEMES, VisemeConfig, viseme_openness, viseme_weights
from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.video import atomic_path

MOUTH_SHARE = 0.5
"""An expression direction is the mouth's when more than this share of its motion is near the mouth."""
ICT_OPEN = {
    "jawOpen": 0.45,
    "mouthLowerDown_L": 0.3,
    "mouthLowerDown_R": 0.3,
    "mouthUpperUp_L": 0.15,
    "mouthUpperUp_R": 0.15,
}
"""ICT-FaceKit's open /a/ in ARKit blendshape weights (its neutral is the closed mouth)."""
ICT_VISEMES = {
    "FF": {"mouthRollLower": 0.5, "mouthUpperUp_L": 0.2, "mouthUpperUp_R": 0.2, "mouthShrugUpper": 0.2},
    "TH": {"mouthRollLower": 0.15},
    "CH": {"mouthFunnel": 0.4, "mouthPucker": 0.2, "mouthShrugUpper": 0.2},
    "SS": {"mouthStretch_L": 0.2, "mouthStretch_R": 0.2},
    "RR": {"mouthFunnel": 0.2, "mouthPucker": 0.2},
    "E": {"mouthStretch_L": 0.25, "mouthStretch_R": 0.25},
    "ih": {"mouthStretch_L": 0.3, "mouthStretch_R": 0.3, "mouthSmile_L": 0.1, "mouthSmile_R": 0.1},
    "oh": {"mouthFunnel": 0.5, "mouthPucker": 0.2},
    "ou": {"mouthPucker": 0.6, "mouthFunnel": 0.3},
}
"""ARKit weights per viseme beyond its openness (after the Oculus/ARKit viseme rigs)."""
PRIOR_PREFIX = "general-mouth-"


@dataclass(frozen=True)
class ArticulationConfig:
    visemes: VisemeConfig = field(default_factory=VisemeConfig)
    extreme_fraction: float = 0.1
    """The closed and open mouths are the means of this share of the least and most open frames."""
    prior_weight: float = 10.0
    """Frames (extremes) or frame-weights (visemes) at which an actor's own shape counts as much as the prior's."""
    own_openness: float = 0.5
    """How much of how far the actor opens each viseme (in their decoded, aligned footage) the
    details keep, the rest left to the openness table: all of it follows real held-out speech
    best (mouth r 0.28 against 0.19 with none, LMD 0.0174 against 0.0198, 4 clips), none follows
    the phones of new speech best (openness r 0.72 against 0.59 with ICT-FaceKit); docs/benchmarks.md."""
    min_open_share: float = 1.0
    """The open mouth parts the lips at least this share as far as the prior's open mouth (the
    corpus speakers' mean) does on the actor's face (`open_widely`): an actor who barely parts
    them in the footage (vox_00098, moustached: his widest tenth of frames at 58% of the prior's)
    still opens visibly on /a/."""


@dataclass(frozen=True)
class MouthShapes:
    """An actor's (or a face model's prior) mouth in expression coefficients."""

    closed: np.ndarray
    """(K,) the closed mouth."""
    open: np.ndarray
    """(K,) the open /a/."""
    details: np.ndarray
    """(V, K) per viseme (`VISEMES`), what it adds to its openness' mouth."""
    extreme_count: float
    """Frames behind `closed` and `open` (0 for a table)."""
    counts: np.ndarray
    """(V,) frame-weights behind each detail."""

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                closed=self.closed,
                open=self.open,
                details=self.details,
                extreme_count=np.float64(self.extreme_count),
                counts=self.counts,
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> MouthShapes:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["closed"], data["open"], data["details"], float(data["extreme_count"]), data["counts"])
        except (OSError, KeyError, ValueError) as err:
            raise InputError(
                f"{path}: not a readable mouth-shapes file ({err}); rerun `talkface personalize`"
            ) from None


def mouth_projection(face_model: FaceModel, width: float = 0.6) -> np.ndarray:
    """`(K, K)` projection onto the expression directions that move mostly the mouth (more than
    `MOUTH_SHARE` of their motion within about `width` eye-corner distances of the mouth centre):
    for blendshapes those blendshapes, else the generalised eigenvectors of the mouth-weighted
    against the whole face's basis Gram matrix."""
    basis = face_model.exp_basis[face_model.region("face")].double().cpu().numpy()  # (V, 3, K)
    mean = face_model.mean_shape.double().cpu().numpy()
    landmarks = mean[face_model.landmark_idx.cpu().numpy()]
    centre, eyes = landmarks[48:68].mean(0), np.linalg.norm(landmarks[36] - landmarks[45])
    distance = np.linalg.norm(mean[face_model.region("face").cpu().numpy()] - centre, axis=1)
    near = np.exp(-((distance / (width * eyes)) ** 2))
    mouth = np.einsum("v,vik,vil->kl", near, basis, basis)
    total = np.einsum("vik,vil->kl", basis, basis) + 1e-9 * np.eye(basis.shape[2])
    if table_prior(face_model) is not None:
        # Blendshapes are already local: the mouth's are whole columns, and any mix of them would
        # leak a smile or a cheek puff of the rest of the face into the lips.
        return np.diag(np.diag(mouth) / np.diag(total) > MOUTH_SHARE).astype(np.float32)
    share, vectors = scipy.linalg.eigh(mouth, total)  # vectors.T @ total @ vectors = I
    chosen = vectors[:, share > MOUTH_SHARE]
    return (chosen @ chosen.T @ total).astype(np.float32)


def articulated_exp(weights: np.ndarray, shapes: MouthShapes) -> np.ndarray:
    """`(T, K)` the mouth's expression for per-frame viseme weights `(T, V)`."""
    openness = viseme_openness(weights)[:, None]
    return shapes.closed + openness * (shapes.open - shapes.closed) + weights @ shapes.details


def articulate(
    exp: np.ndarray,
    timings: PhoneTimings,
    shapes: MouthShapes,
    projection: np.ndarray,
    fps: float = 25.0,
    config: VisemeConfig = VisemeConfig(),
    exp_range: tuple[float, float] | None = None,
    habits: float | np.ndarray = 0.0,
) -> np.ndarray:
    """`(T, K)` expressions whose mouth follows the phones and whose rest is `exp`'s (the network's).
    `habits` (a number, or one per frame): the share of `exp`'s own mouth motion about its mean
    added to the phones' mouth (the actor's habits that no phone says: a breath in a pause, an
    idle mouth, a smile)."""
    mouth = articulated_exp(viseme_weights(timings, len(exp), fps, config), shapes)
    habits = np.broadcast_to(np.asarray(habits, np.float32), (len(exp),))[:, None]
    if habits.any():
        mouth = mouth + habits * (exp - exp.mean(0))
    rest = np.eye(len(projection), dtype=np.float32) - projection
    out = (mouth @ projection.T + exp @ rest.T).astype(exp.dtype)
    return out if exp_range is None else np.clip(out, *exp_range)


def temper(exp: np.ndarray, centre: np.ndarray, projection: np.ndarray, amplitude: float) -> np.ndarray:
    """`exp` with its mouth part's distance from the `(K,)` expression `centre` scaled by `amplitude`."""
    return (exp + (amplitude - 1.0) * (exp - centre) @ projection.T).astype(exp.dtype)


def lip_gaps(face_model: FaceModel, id: torch.Tensor, exp: np.ndarray) -> np.ndarray:
    """`(N,)` `audio2pose.metrics.mouth_aperture` of `(N, K)` expressions, from the landmark
    vertices alone (cheap enough to search over)."""
    rows = face_model.landmark_idx
    mean, id_basis, exp_basis = face_model.mean_shape[rows], face_model.id_basis[rows], face_model.exp_basis[rows]
    with torch.no_grad():
        points = (
            mean
            + torch.einsum("lck,k->lc", id_basis, id.to(mean))
            + torch.einsum("lck,nk->nlc", exp_basis, torch.from_numpy(np.asarray(exp, np.float32)).to(mean))
        )
    return landmark_aperture(points.cpu().numpy())


def close_lips(
    exp: np.ndarray,
    timings: PhoneTimings,
    shapes: MouthShapes,
    face_model: FaceModel,
    id: torch.Tensor,
    fps: float = 25.0,
    config: VisemeConfig = VisemeConfig(),
) -> np.ndarray:
    """`exp` with each held bilabial closure frame moved along the mouth's opening axis to where
    the lips meet given that frame's own rest of the face (the network's brows and cheeks still
    pull the lips a little)."""
    held = viseme_weights(timings, len(exp), fps, config)[:, VISEMES.index("PP")] >= 0.999
    if not held.any():
        return exp
    projection = mouth_projection(face_model)
    axis = (shapes.open - shapes.closed) @ projection.T
    steps = np.linspace(-0.5, 0.5, 21, dtype=np.float32)
    frames = exp[held]
    candidates = frames[:, None] + steps[None, :, None] * axis  # (F, S, K)
    if face_model.exp_range is not None:
        candidates = np.clip(candidates, *face_model.exp_range)
    gaps = lip_gaps(face_model, id, candidates.reshape(-1, exp.shape[1])).reshape(len(frames), len(steps))
    out = exp.copy()
    out[held] = candidates[np.arange(len(frames)), gaps.argmin(1)]
    return out


def footage_shapes(
    exp: np.ndarray,
    aperture: np.ndarray,
    timings: PhoneTimings | None,
    fps: float = 25.0,
    config: ArticulationConfig = ArticulationConfig(),
) -> MouthShapes:
    """An actor's own mouth shapes from their `(N, K)` reconstructed expressions, their `(N,)`
    mouth aperture and (when known) the phones of their speech: closed and open from the
    apertures alone, the details as the weighted mean of what openness leaves unexplained."""
    count = max(1, int(round(config.extreme_fraction * len(exp))))
    order = np.argsort(aperture, kind="stable")
    closed, opened = exp[order[:count]].mean(0), exp[order[-count:]].mean(0)
    details, counts = np.zeros((len(VISEMES), exp.shape[1]), np.float32), np.zeros(len(VISEMES))
    if timings is not None and timings.phones:
        weights = viseme_weights(timings, len(exp), fps, config.visemes)
        residual = exp - articulated_exp(weights, MouthShapes(closed, opened, details, count, counts))
        counts = weights.sum(0)
        details = (weights.T @ residual) / np.maximum(counts, 1e-9)[:, None]
        axis = (opened - closed) / max(float(np.linalg.norm(opened - closed)), 1e-9)
        details -= (1 - config.own_openness) * np.outer(details @ axis, axis)
    details[VISEMES.index("PP")] = 0.0  # the closed mouth is the closure itself: nothing may open it
    return MouthShapes(
        closed.astype(np.float32), opened.astype(np.float32), details.astype(np.float32), float(count), counts
    )


def shrink(
    own: MouthShapes, prior: MouthShapes | None, config: ArticulationConfig = ArticulationConfig()
) -> MouthShapes:
    """The actor's shapes pulled towards the prior's by how little they were seen (each shape
    weighs `count / (count + prior_weight)`)."""
    if prior is None:
        return own
    k = config.prior_weight
    a = own.extreme_count / (own.extreme_count + k)
    b = (own.counts / (own.counts + k))[:, None]
    return MouthShapes(
        (a * own.closed + (1 - a) * prior.closed).astype(np.float32),
        (a * own.open + (1 - a) * prior.open).astype(np.float32),
        (b * own.details + (1 - b) * prior.details).astype(np.float32),
        own.extreme_count + prior.extreme_count,
        own.counts + prior.counts,
    )


def table_prior(face_model: FaceModel) -> MouthShapes | None:
    """The prior of a face model whose expressions are ARKit blendshapes (ICT-FaceKit); None for others."""
    names = face_model.exp_names or ()
    if not set(ICT_OPEN) <= set(names):
        return None
    index = {name: i for i, name in enumerate(names)}

    def weights(table: dict[str, float]) -> np.ndarray:
        out = np.zeros(len(names), np.float32)
        for name, value in table.items():
            if name in index:
                out[index[name]] = value
        return out

    details = np.stack([weights(ICT_VISEMES.get(v, {})) for v in VISEMES])
    return MouthShapes(np.zeros(len(names), np.float32), weights(ICT_OPEN), details, 0.0, np.zeros(len(VISEMES)))


def corpus_prior_path(face_model_name: str) -> Path:
    return models_dir() / f"{PRIOR_PREFIX}{face_model_name}.npz"


def corpus_prior(clips: list[MouthShapes]) -> MouthShapes:
    """The mean of several actors' own shapes (each detail weighted by how often it was seen)."""
    counts = np.stack([c.counts for c in clips])  # (C, V)
    details = (
        np.einsum("cv,cvk->vk", counts, np.stack([c.details for c in clips])) / np.maximum(counts.sum(0), 1e-9)[:, None]
    )
    return MouthShapes(
        np.mean([c.closed for c in clips], 0).astype(np.float32),
        np.mean([c.open for c in clips], 0).astype(np.float32),
        details.astype(np.float32),
        float(sum(c.extreme_count for c in clips)),
        counts.sum(0),
    )


def face_model_prior(face_model: FaceModel) -> MouthShapes | None:
    """The face model's prior: its blendshape table, else its corpus prior where one was trained."""
    table = table_prior(face_model)
    if table is not None:
        return table
    path = corpus_prior_path(face_model.name)
    return MouthShapes.load(path) if path.is_file() else None


def _mouth_gaps(face_model: FaceModel, id: torch.Tensor, mouths: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Lip gaps of `(N, K)` mouth expressions with the rest of the face at the `(K,)` expression `rest`."""
    projection = mouth_projection(face_model)
    faces = mouths @ projection.T + rest @ (np.eye(len(projection), dtype=np.float32) - projection).T
    if face_model.exp_range is not None:
        faces = np.clip(faces, *face_model.exp_range)
    return lip_gaps(face_model, id, faces)


def open_widely(
    shapes: MouthShapes,
    prior: MouthShapes | None,
    face_model: FaceModel,
    id: torch.Tensor,
    rest: np.ndarray,
    config: ArticulationConfig = ArticulationConfig(),
) -> MouthShapes:
    """The shapes with `open` moved along the prior's opening direction until this face's lips part
    at least `config.min_open_share` as far as with the prior's open mouth (rest of the face at the
    `(K,)` expression `rest`); unchanged where they already do, or without a prior."""
    if prior is None:
        return shapes
    floor = config.min_open_share * float(_mouth_gaps(face_model, id, prior.open[None], rest)[0])
    steps = np.linspace(0.0, 1.5, 31, dtype=np.float32)
    candidates = shapes.open + steps[:, None] * (prior.open - prior.closed)
    if face_model.exp_range is not None:
        candidates = np.clip(candidates, *face_model.exp_range)
    wide = np.nonzero(_mouth_gaps(face_model, id, candidates, rest) >= floor)[0]
    # The first step that reaches the floor (the last, widest, where none does).
    chosen = candidates[wide[0] if len(wide) else -1]
    return MouthShapes(shapes.closed, chosen, shapes.details, shapes.extreme_count, shapes.counts)


def settle_closure(shapes: MouthShapes, face_model: FaceModel, id: torch.Tensor, rest: np.ndarray) -> MouthShapes:
    """The shapes with `closed` moved along the opening axis to where this face's lips meet, with
    the rest of the face at the `(K,)` expression `rest` (the actor's mean): a mean of closed
    frames, or another face's closed mouth, may leave them a little apart."""
    steps = np.linspace(-1.0, 0.5, 31, dtype=np.float32)
    candidates = shapes.closed + steps[:, None] * (shapes.open - shapes.closed)
    if face_model.exp_range is not None:
        # A closed mouth past the range (jawOpen < 0) would be clipped at generate, and openings
        # between it and the open mouth would stay clipped closed longer than the phones say.
        candidates = np.clip(candidates, *face_model.exp_range)
    closed = candidates[int(np.argmin(_mouth_gaps(face_model, id, candidates, rest)))]
    return MouthShapes(closed, shapes.open, shapes.details, shapes.extreme_count, shapes.counts)
