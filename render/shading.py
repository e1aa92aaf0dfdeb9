"""Vertex normals and Deep3DFaceRecon's spherical-harmonics (SH) Lambertian shading.

Normals live in the frame of the vertices given (for lighting: the posed model frame, y up, as
Deep3DFaceRecon's "rotated face normal"). Faces are wound counter-clockwise seen from outside,
so normals point outward (a triangle wound counter-clockwise seen from +z has normal +z).

SH lighting: 9 real SH bands with Deep3DFaceRecon's constants and signs; `gamma` (B, 27) is
3 colour channels x 9 bands (R 0-8, G 9-17, B 18-26), and 0.8 is added to band 0 of each
channel before use, so gamma = 0 is a white ambient light of irradiance
0.8 * a0 * c0 = 0.4 sqrt(pi) ~ 0.709.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SH_A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
"""Lambertian convolution factors of SH orders 0, 1, 2."""
SH_C = (
    1 / math.sqrt(4 * math.pi),
    math.sqrt(3.0) / math.sqrt(4 * math.pi),
    3 * math.sqrt(5.0) / math.sqrt(12 * math.pi),
)
"""SH normalisation constants of orders 0, 1, 2."""
SH_AMBIENT = 0.8
"""Added to band 0 of each colour channel of gamma (Deep3DFaceRecon's `init_lit`)."""


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """(B, V, 3) vertices, (F, 3) long faces -> (B, V, 3) unit, area-weighted vertex normals.

    Vertices in no face get a zero normal.
    """
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (B, V, 3), got {tuple(vertices.shape)}")
    corner_ids = faces.t().contiguous()  # (3, F)
    # Per-coordinate (B, V) gathers and sums: several times faster on CPU than indexing (B, V, 3).
    coords = [c.contiguous() for c in vertices.unbind(-1)]
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = ([c.index_select(1, ids) for ids in corner_ids] for c in coords)
    ex, ey, ez, fx, fy, fz = x1 - x0, y1 - y0, z1 - z0, x2 - x0, y2 - y0, z2 - z0
    # Unnormalised cross product (e x f): its length is twice the area, hence the area weighting.
    face_normals = (ey * fz - ez * fy, ez * fx - ex * fz, ex * fy - ey * fx)  # (B, F) each
    every_corner = corner_ids.reshape(-1)
    normals = torch.stack(
        [torch.zeros_like(c).index_add(1, every_corner, n.repeat(1, 3)) for c, n in zip(coords, face_normals)], dim=-1
    )
    return F.normalize(normals, dim=-1, eps=1e-12)


def sh_basis(normals: Tensor) -> Tensor:
    """(..., 3) unit normals -> (..., 9) Deep3DFaceRecon's SH basis, Lambertian factors included."""
    return torch.stack(_sh_bands(*normals.unbind(-1)), dim=-1)


def _sh_bands(x: Tensor, y: Tensor, z: Tensor) -> list[Tensor]:
    a0, a1, a2 = SH_A
    c0, c1, c2 = SH_C
    return [
        torch.full_like(x, a0 * c0),
        -a1 * c1 * y,
        a1 * c1 * z,
        -a1 * c1 * x,
        a2 * c2 * x * y,
        -a2 * c2 * y * z,
        0.5 * a2 * c2 / math.sqrt(3.0) * (3 * z**2 - 1),
        -a2 * c2 * x * z,
        0.5 * a2 * c2 * (x**2 - y**2),
    ]


def sh_shading(normals: Tensor, gamma: Tensor) -> Tensor:
    """(B, V, 3) unit normals, (B, 27) SH coefficients -> (B, V, 3) RGB irradiance."""
    if gamma.ndim != 2 or gamma.shape[-1] != 27:
        raise ValueError(f"gamma must have shape (B, 27), got {tuple(gamma.shape)}")
    coeffs = gamma.reshape(-1, 3, 9)
    coeffs = coeffs + torch.tensor([SH_AMBIENT] + [0.0] * 8, dtype=gamma.dtype, device=gamma.device)
    # Band by band on contiguous (B, V) tensors: several times faster on CPU than a (B, V, 9) product.
    bands = _sh_bands(*(c.contiguous() for c in normals.unbind(-1)))
    channels = [sum(band * coeffs[:, c, k, None] for k, band in enumerate(bands)) for c in range(3)]
    return torch.stack(channels, dim=-1)


def shade(albedo: Tensor, normals: Tensor, gamma: Tensor) -> Tensor:
    """(B, V, 3) or (V, 3) albedo in [0, 1], (B, V, 3) normals, (B, 27) gamma -> (B, V, 3) colour."""
    return albedo * sh_shading(normals, gamma)
