"""The actor's detailed albedo, after Yi et al.: the colours of the most frontal, most neutral
frames with the fitted lighting divided out, stored per vertex.

The photometric fit already gives a smooth per-vertex albedo shared by the clip; this replaces it
where a chosen frame sees a vertex well (visible, facing the camera), keeping skin detail that
the low-resolution fit averages away.
"""

from __future__ import annotations

import torch

from recon3d.facemodel import Coeffs, FaceModel
from recon3d.fit import ClipObservations, observe_vertices
from render.camera import PerspectiveCamera
from render.rasterize import RasterConfig, rasterize


def albedo_frames(model: FaceModel, coeffs: Coeffs, count: int) -> torch.Tensor:
    """Indices of the `count` frames best by rank sum of frontality (|yaw| + |pitch|) and
    neutrality (expression norm)."""
    frontal = coeffs.angle[:, :2].abs().sum(-1)
    neutral = (coeffs.exp / model.exp_prior_std).norm(dim=-1)
    ranks = _rank(frontal) + _rank(neutral)
    return ranks.argsort(stable=True)[: max(1, min(count, len(ranks)))]


def _rank(x: torch.Tensor) -> torch.Tensor:
    """(T,) -> (T,) rank of each value, equal values sharing the lowest rank."""
    return torch.searchsorted(x.sort().values, x)


@torch.no_grad()
def visible_vertices(
    screen: torch.Tensor, faces: torch.Tensor, image_size: int, tolerance: float = 0.02
) -> torch.Tensor:
    """(B, V) bool: vertex in the image and not behind the rendered surface; screen (B, V, 3) [u, v, z_c]."""
    fragments = rasterize(screen, faces, RasterConfig(image_size=image_size))
    pixel = screen[..., :2].floor().long()
    inside = ((pixel >= 0) & (pixel < image_size)).all(-1)
    pixel = pixel.clamp(0, image_size - 1)
    batch = torch.arange(screen.shape[0], device=screen.device)[:, None]
    depth = fragments.depth[batch, pixel[..., 1], pixel[..., 0]]  # (B, V)
    return inside & fragments.mask[batch, pixel[..., 1], pixel[..., 0]] & (screen[..., 2] <= depth + tolerance)


@torch.no_grad()
def detailed_albedo(
    model: FaceModel,
    coeffs: Coeffs,
    fitted_albedo: torch.Tensor,
    obs: ClipObservations,
    num_frames: int = 5,
    min_facing: float = 0.3,
) -> torch.Tensor:
    """(V, 3) albedo from the best `num_frames` frames at the crop's resolution, falling back to
    `fitted_albedo` where none of them sees a vertex facing the camera by more than `min_facing`."""
    camera = PerspectiveCamera.deep3d(obs.image_size)
    idx = albedo_frames(model, coeffs, num_frames)
    seen = observe_vertices(model, coeffs[idx], obs.images[idx].float() / 255, camera)
    visible = visible_vertices(seen.screen, model.faces, obs.image_size)
    weight = ((seen.facing - min_facing).clamp(min=0) * visible)[..., None]
    total = weight.sum(0)  # (V, 1)
    albedo = (weight * seen.albedo).sum(0) / total.clamp(min=1e-6)
    # Blend towards the fitted albedo where the chosen frames see a vertex only obliquely.
    blend = (total / (0.5 * len(idx))).clamp(max=1.0)
    return (blend * albedo + (1 - blend) * fitted_albedo).clamp(0, 1)


def albedo_to_tex(model: FaceModel, albedo: torch.Tensor, weight: float = 1e-3) -> torch.Tensor:
    """(V, 3) per-vertex albedo -> (tex_dim,) texture coefficients whose albedo is closest to it
    (ridge least squares, `weight` times the number of values on |tex|^2), so models with an
    albedo basis (BFM) also get meaningful `tex` coefficients, e.g. in Deep3DFaceRecon's 257 layout."""
    basis = model.tex_basis.reshape(-1, model.layout.tex_dim)  # (V 3, K)
    target = (albedo - model.tex_mean).reshape(-1)
    lhs = basis.T @ basis + weight * len(target) * torch.eye(basis.shape[1]).to(basis)
    return torch.linalg.solve(lhs, basis.T @ target)
