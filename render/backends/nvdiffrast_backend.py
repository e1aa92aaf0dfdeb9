"""nvdiffrast (CUDA) backend: hardware-speed rasterization into the reference `Fragments`.

Screen vertices go to clip space with w = z_c, so nvdiffrast's barycentrics are perspective
correct: x_ndc = 2 u / W - 1 and y_ndc = 2 v / H - 1, which puts pixel centres where ours are
(nvdiffrast's first image row is y_ndc = -1, so rows stay top-down). Depth maps to
z_ndc in (-1, 1) through near/far planes bracketing the scene, so nothing is clipped in depth.
Range mode rasterizes each frame's own list of triangles, leaving out the ones the reference
ignores (a vertex at z_c <= 0, degenerate, or culled), which nvdiffrast would clip instead.
"""

from __future__ import annotations

import nvdiffrast.torch as dr
import torch
from torch import Tensor

from render.rasterize import Fragments, visible_faces

_contexts: dict[torch.device, dr.RasterizeCudaContext] = {}


def rasterize(screen_vertices: Tensor, faces: Tensor, size: tuple[int, int], cull_backfaces: bool) -> Fragments:
    """(B, V, 3) (u, v, z_c) CUDA tensor, (F, 3) long faces -> Fragments of size (H, W)."""
    if not screen_vertices.is_cuda:
        raise ValueError("the nvdiffrast backend needs CUDA tensors; use backend='torch' on the CPU")
    H, W = size
    B, V, _ = screen_vertices.shape
    points = screen_vertices.float()
    keep = visible_faces(points, faces, cull_backfaces)  # (B, F)
    frame, face = keep.nonzero(as_tuple=True)  # (T,) each, grouped by frame
    if len(face) == 0:
        return Fragments(
            tri_ids=torch.full((B, H, W), -1, dtype=torch.int64, device=points.device),
            bary=points.new_zeros(B, H, W, 3),
            depth=points.new_zeros(B, H, W),
        )
    tri = faces[face] + (frame * V)[:, None]  # (T, 3) rows of the flattened (B V, 4) positions
    counts = keep.sum(1)
    ranges = torch.stack([counts.cumsum(0) - counts, counts], dim=1).int().cpu()

    u, v, z = points.reshape(-1, 3).unbind(-1)
    used_z = z[tri]
    near, far = 0.5 * float(used_z.min()), 2.0 * float(used_z.max())
    # OpenGL depth: z_ndc = (far + near) / (far - near) - 2 far near / ((far - near) z_c).
    z_clip = ((far + near) * z - 2 * far * near) / (far - near)
    pos = torch.stack([(2 * u / W - 1) * z, (2 * v / H - 1) * z, z_clip, z], dim=-1).contiguous()
    if points.device not in _contexts:
        _contexts[points.device] = dr.RasterizeCudaContext(device=points.device)
    rast, _ = dr.rasterize(_contexts[points.device], pos, tri.int().contiguous(), (H, W), ranges=ranges, grad_db=False)

    index = rast[..., 3].long() - 1  # (B, H, W) row of `tri`, -1 at background
    covered = index >= 0
    index = index.clamp(min=0)
    # nvdiffrast's (u, v) weigh the triangle's first and second vertex.
    bary = torch.stack([rast[..., 0], rast[..., 1], 1 - rast[..., 0] - rast[..., 1]], dim=-1)
    bary = torch.where(covered[..., None], bary, 0.0)
    depth = (bary * used_z[index]).sum(-1)  # camera depth is linear in perspective-correct barycentrics
    return Fragments(tri_ids=torch.where(covered, face[index], -1), bary=bary, depth=depth)
