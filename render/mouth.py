"""Mouth retrieval: per output frame, the frame of the actor whose mouth has the target's shape.

Image-based synthesis (`render.synthesis`) warps the mouth interior (teeth, tongue, the dark of
the throat) from a real frame of the actor; the nearer that frame's mouth shape is to the
target's, the less the warp bends it. Shapes are compared as the 20 mouth landmarks of the face
model under each expression, in model space (the head pose taken out), in units of the eyes'
distance; the head pose adds a term, since a mouth filmed turned away warps poorly to a frontal
one. Picking the nearest frame independently per output frame would switch between frames
every few frames and the teeth would flicker, so the choice is a Viterbi path
(`render.keyframes.coherent_path`): staying on a frame or moving to the next one in the video is
free, any other switch costs `switch_cost`.
A frame whose inner lips are much less open than the target's shows too little of the interior
to warp (it would stretch a lip line into the opening); one much more open squeezes its interior
into a dark band between lips that should meet (a p/b/m would read as parted: ICT-FaceKit's
vox_741400104 closed on 0.67-0.85 of its bilabials with such lenders, 0.91-1.00 without). Neither
lends (`MouthConfig.min_open_ratio` both ways); a target no frame fits gets -1: its opening is
painted and its lips are the background frame's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon3d.facemodel import Coeffs, FaceModel
from recon3d.landmarks import EYE_OUTER_CORNERS_IBUG, INNER_LIP_PAIRS_IBUG
from render.keyframes import coherent_path

MOUTH = slice(48, 68)
"""iBUG-68 outer and inner lip landmarks."""


@dataclass(frozen=True)
class MouthConfig:
    pose_weight: float = 0.3
    """Cost per radian of head-pose difference (L1 over the three angles), against the shape
    distance in eye-distance units (0.3: 10 degrees of yaw weigh as much as a 5% wider mouth)."""
    switch_cost: float = 0.05
    """Cost of jumping to another frame than the current one or the next (see module docstring)."""
    min_open_ratio: float = 0.6
    """A frame can lend its interior to a target whose inner-lip opening is at most 1/this of its
    own (give or take `closed`) and, unless the target is closed, at least this times it."""
    closed: float = 0.02
    """Opening (eye-distance units) of about a closed mouth, which any frame can lend to. A closed
    frame does not lend to a parted target: its lips, stretched over the opening, read as closed
    (at 224 px, planned openings of 0.03-0.06 were re-tracked shut: vox_620900105's r 0.60 against
    0.63 with them painted)."""

    def __post_init__(self) -> None:
        if min(self.pose_weight, self.switch_cost, self.closed) < 0 or not 0 < self.min_open_ratio <= 1:
            raise ValueError(f"need pose_weight, switch_cost, closed >= 0 and 0 < min_open_ratio <= 1: {self}")


@dataclass(frozen=True)
class MouthLandmarks:
    """Mouth shapes of a sequence of frames."""

    points: np.ndarray
    """(T, 20, 3) mouth landmarks in model space, eye-distance units, centred on their mean."""
    opening: np.ndarray
    """(T,) inner-lip opening, eye-distance units."""
    angle: np.ndarray
    """(T, 3) head pose, radians."""

    def __len__(self) -> int:
        return len(self.opening)


@torch.no_grad()
def mouth_landmarks(model: FaceModel, coeffs: Coeffs) -> MouthLandmarks:
    """The mouth shapes of frames with coefficients `coeffs` (id, exp and angle are used)."""
    landmarks = model.subset("landmarks")
    coeffs = coeffs.to(landmarks.mean_shape.device)
    points = landmarks.landmarks(landmarks.shape(coeffs.id, coeffs.exp)).cpu().double()
    eyes = (points[:, EYE_OUTER_CORNERS_IBUG[0]] - points[:, EYE_OUTER_CORNERS_IBUG[1]]).norm(dim=-1)[:, None, None]
    points = points / eyes
    upper, lower = (torch.tensor([pair[k] for pair in INNER_LIP_PAIRS_IBUG]) for k in (0, 1))
    opening = (points[:, upper] - points[:, lower]).norm(dim=-1).mean(1)
    mouth = points[:, MOUTH]
    mouth = mouth - mouth.mean(1, keepdim=True)
    return MouthLandmarks(mouth.numpy().astype(np.float32), opening.numpy(), coeffs.angle.cpu().double().numpy())


def match_mouths(
    targets: MouthLandmarks, candidates: MouthLandmarks, config: MouthConfig = MouthConfig()
) -> np.ndarray:
    """(T,) int64: per target frame the candidate frame that lends its mouth interior, or -1 where
    no candidate opens wide enough (see the module docstring)."""
    if len(candidates) == 0:
        return np.full(len(targets), -1, np.int64)
    flat = candidates.points.reshape(len(candidates), -1)

    def costs():
        for t in range(len(targets)):
            shape = np.sqrt(((flat - targets.points[t].reshape(1, -1)) ** 2).sum(1) / targets.points.shape[1])
            pose = np.abs(candidates.angle - targets.angle[t]).sum(1)
            too_closed = (targets.opening[t] > config.closed) & (
                candidates.opening < config.min_open_ratio * targets.opening[t]
            )
            too_open = candidates.opening > targets.opening[t] / config.min_open_ratio + config.closed
            # A candidate that does not fit costs so much that it is taken only when none fits (then -1).
            yield shape + config.pose_weight * pose + 1e3 * (too_closed | too_open)

    path = coherent_path(costs(), config.switch_cost)
    opening = candidates.opening[path]
    usable = ((targets.opening <= config.closed) | (opening >= config.min_open_ratio * targets.opening)) & (
        opening <= targets.opening / config.min_open_ratio + config.closed
    )
    return np.where(usable, path, -1)
