"""Landmark vertices of a scanned face model made consistent with our tracker's landmarks.

The tracker's iBUG-68 points are fixed vertices of mediapipe's face mesh (`recon3d.landmarks`).
A model's own 68 landmark vertices (ICT-FaceKit's, picked for dlib-style detectors) sit
elsewhere on the surface, mostly along the jaw and brows, and that offset is a fitting error no
coefficient can remove (measured on vox_00010: 5.2% of the eye distance with ICT's own
vertices). So we pick, for each mediapipe vertex, the model vertex at the same place on the
face: the built-in model's mean shape (mediapipe's geometry) is aligned to the model (similarity
transform on the inner-face landmarks first, then on all points), the model's identity is fitted
to it by ridge regression, and each mediapipe vertex takes its nearest model vertex; repeated a
few times. The result is deterministic and computed once, at conversion.

The inner lips need one more step (`inner_lip_silhouette`): a scanned model's lips roll inward
past the place nearest mediapipe's inner-lip vertex, and seen from the front that roll is the
lip's edge. Fitted to a photo with the mouth open, landmarks on the lips' front leave the roll
lying over the teeth, and the lips cannot meet without showing them.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from recon3d.facemodels.builtin import align_similarity


def tracker_correspondence(
    mean_shape: np.ndarray,
    id_basis: np.ndarray,
    candidates: np.ndarray,
    landmark_idx: np.ndarray,
    reference: np.ndarray,
    reference_landmark_idx: np.ndarray,
    iterations: int = 4,
    ridge: float = 1e-3,
) -> np.ndarray:
    """(P,) model vertices matching the P vertices of `reference` (mediapipe mesh, any scale).

    Args:
        mean_shape, id_basis: the model, (V, 3) and (V, 3, K).
        candidates: model vertices allowed as matches (the front face surface).
        landmark_idx, reference_landmark_idx: (68,) iBUG-68 vertices of the model and of the
            reference; the inner 51 (brows, nose, eyes, mouth) seed the alignment.
    """
    num_points = len(reference)
    weights = np.zeros(num_points)
    target = np.zeros_like(reference, dtype=np.float64)
    weights[reference_landmark_idx[17:]] = 1.0
    target[reference_landmark_idx[17:]] = mean_shape[landmark_idx[17:]]
    shape = mean_shape.astype(np.float64)
    basis = id_basis.astype(np.float64)
    match = None
    for _ in range(iterations):
        aligned = align_similarity(reference[None].astype(np.float64), target, weights)[0]
        if match is not None:
            # Identity that best explains the aligned reference at the current matches.
            a = basis[match].reshape(-1, basis.shape[2])
            b = (aligned - mean_shape[match]).reshape(-1)
            coeffs = np.linalg.solve(a.T @ a + ridge * len(b) * np.eye(a.shape[1]), a.T @ b)
            shape = mean_shape + basis @ coeffs
        tree = cKDTree(shape[candidates])
        match = candidates[tree.query(aligned)[1]]
        weights = np.ones(num_points)
        target = shape[match]
    return match


UPPER_INNER_LIP = (61, 62, 63)
LOWER_INNER_LIP = (65, 66, 67)
"""iBUG-68 inner-lip landmarks between the mouth corners (60 and 64)."""


def inner_lip_silhouette(
    open_shape: np.ndarray,
    landmark_idx: np.ndarray,
    candidates: np.ndarray,
    column: float = 0.015,
    depth: float = 0.2,
    reach: float = 0.15,
) -> np.ndarray:
    """(68,) `landmark_idx` with each inner-lip landmark between the corners moved to the vertex
    of its lip that bounds the mouth opening seen from the front (the lowest of the upper lip,
    the highest of the lower) in its column, in `open_shape` ((V, 3), the model with its mouth
    open, +y up, +z to the camera). Candidates lie within `column` across, `depth` behind and
    `reach` up or down of the landmark (model units); a landmark without any stays."""
    out = landmark_idx.copy()
    points = open_shape[landmark_idx]
    middle = points[60:68, 1].mean()
    for k in UPPER_INNER_LIP + LOWER_INNER_LIP:
        upper = k in UPPER_INNER_LIP
        x, y, z = points[k]
        near = open_shape[candidates]
        chosen = candidates[
            (np.abs(near[:, 0] - x) < column)
            & (near[:, 2] > z - depth)
            & (np.abs(near[:, 1] - y) < reach)
            & ((near[:, 1] > middle) == upper)
        ]
        if len(chosen):
            heights = open_shape[chosen, 1]
            out[k] = chosen[np.argmin(heights) if upper else np.argmax(heights)]
    return out
