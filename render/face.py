"""The actor's face as `generate` renders it: the face surface with the mouth interior and teeth
where the face model has them (a mouth hole painted where it has not), in the actor's crop."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from recon3d.facemodel import Coeffs, FaceModel
from recon3d.fit import model_landmarks, render_fit
from recon3d.landmarks import INNER_LIPS_IBUG
from recon3d.reconstruct import front_faces
from render.camera import PerspectiveCamera
from render.composite import image_to_uint8

MOUTH_ALBEDO = (0.42, 0.16, 0.16)
"""Albedo of the mouth interior (gums, tongue, socket): never seen well enough in the frames to
estimate, so a dark red."""
TEETH_ALBEDO = (0.86, 0.84, 0.78)
MOUTH_SHADOW = (70, 24, 24)
"""RGB of a mouth opening the mesh leaves as a hole: the interior in shadow."""
SHADOW_SHARE = 0.4
"""An opening painted into the actor's own pixels (`opening_shadow`) is at most this share of the
lips' and skin's colour around it, channel by channel: on dark or painted lips (a painting's
maroon) `MOUTH_SHADOW` is hardly darker than the lips, and the opening does not read as one."""
TEETH_SHADED = (190, 184, 170)
TEETH_FRACTION = 0.35
"""Upper part of such an opening (per column) painted as the upper teeth."""


class FaceRenderer:
    """Renders the actor's face for generation: the face surface with the mouth interior and teeth
    where the face model has them, in the actor's crop."""

    def __init__(self, model: FaceModel, albedo: np.ndarray, camera: PerspectiveCamera, device: torch.device) -> None:
        albedo = torch.from_numpy(albedo).clone()
        parts = ["face"]
        for region, colour in (("mouth_interior", MOUTH_ALBEDO), ("teeth", TEETH_ALBEDO)):
            if region in model.regions:
                albedo[model.region(region).cpu()] = torch.tensor(colour)
                parts.append(region)
        keep = torch.unique(torch.cat([model.region(name).cpu() for name in parts]))
        self.model = model.subset(*parts).to(device)
        self.albedo = albedo[keep].to(device)
        self.faces = front_faces(self.model)
        self.landmark_model = self.model.subset("landmarks")
        self.camera = camera
        self.device = torch.device(device)

    @torch.no_grad()
    def render(self, coeffs: Coeffs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 images, (B, S, S) coverage and (B, 68, 2) landmark pixels."""
        out = render_fit(self.model, coeffs, self.albedo, self.camera, self.faces)
        landmarks = model_landmarks(self.landmark_model, coeffs, self.camera).cpu().numpy()
        images = image_to_uint8(out.image)
        coverage = out.mask[:, 0].cpu().numpy()
        for image, covered, points in zip(images, coverage, landmarks):
            fill_mouth_hole(image, covered, points[INNER_LIPS_IBUG])
        return images, coverage, landmarks


def fill_mouth_hole(image: np.ndarray, coverage: np.ndarray, inner_lips: np.ndarray) -> None:
    """Paints the hole a mesh without a mouth interior leaves between the lips (the uncovered
    regions enclosed by the render that meet the inner-lip polygon) the mouth's shadowed colour,
    and marks it covered, in place. Other holes (the eyes) stay open: there the real frame's eyes
    show through."""
    lips = np.zeros(coverage.shape, np.uint8)
    cv2.fillPoly(lips, [np.round(inner_lips).astype(np.int32)], 1)
    open_area = (coverage < 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(open_area, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    inside = np.unique(labels[(lips > 0) & (open_area > 0)])
    holes = np.setdiff1d(inside, border)
    if len(holes):
        hole = np.isin(labels, holes)
        paint_mouth(image, hole)
        coverage[hole] = 1.0


def paint_mouth(
    image: np.ndarray, opening: np.ndarray, teeth_hidden: float = 0.0, shadow: tuple | np.ndarray = MOUTH_SHADOW
) -> None:
    """Paints the (H, W) bool `opening` of (H, W, 3) uint8 `image`, in place, as a mouth seen from
    the front: per column the upper part the upper teeth, less `teeth_hidden` px of them behind
    the upper lip, the rest the interior in `shadow` (one dark colour reads as a black blob)."""
    rows = np.arange(opening.shape[0])[:, None]
    top = np.where(opening.any(0), opening.argmax(0), 0)
    bottom = np.where(opening.any(0), opening.shape[0] - 1 - opening[::-1].argmax(0), 0)
    teeth = opening & (rows < top + TEETH_FRACTION * (bottom - top + 1) - teeth_hidden)
    image[opening] = np.rint(shadow).astype(image.dtype)
    image[teeth] = TEETH_SHADED


def opening_shadow(around: np.ndarray) -> np.ndarray:
    """The colour of a painted mouth interior among the `(N, 3)` colours `around` it (the lips and
    skin in its box): `MOUTH_SHADOW`, or darker, at most `SHADOW_SHARE` of their mean."""
    shadow = np.asarray(MOUTH_SHADOW, np.float64)
    return np.minimum(shadow, SHADOW_SHARE * around.mean(0)) if len(around) else shadow
