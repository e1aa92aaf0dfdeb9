"""PyTorch3D backend: `rasterize_meshes` (CPU or CUDA) into the reference `Fragments`.

PyTorch3D's NDC has +x left and +y up, the shorter image side spanning [-1, 1], and pixel (i, j)
centred at x = (W - 2 j - 1) / S, y = (H - 2 i - 1) / S with S = min(H, W); so our (u, v) map to
((W - 2 u) / S, (H - 2 v) / S), and z stays the camera depth z_c, which its perspective-correct
barycentrics need. Each frame is a mesh of only the triangles the reference rasterizes, and the
packed face indices PyTorch3D returns are mapped back to rows of `faces`.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes
from torch import Tensor

from render.rasterize import Fragments, visible_faces


def rasterize(screen_vertices: Tensor, faces: Tensor, size: tuple[int, int], cull_backfaces: bool) -> Fragments:
    """(B, V, 3) (u, v, z_c), (F, 3) long faces -> Fragments of size (H, W)."""
    H, W = size
    S = min(H, W)
    points = screen_vertices.float()
    keep = visible_faces(points, faces, cull_backfaces)  # (B, F)
    u, v, z = points.unbind(-1)
    ndc = torch.stack([(W - 2 * u) / S, (H - 2 * v) / S, z], dim=-1)  # (B, V, 3)
    kept = [row.nonzero().squeeze(1) for row in keep]  # per frame, face indices
    meshes = Meshes(verts=list(ndc), faces=[faces[k] for k in kept])
    pix_to_face, zbuf, bary, _ = rasterize_meshes(
        meshes, image_size=(H, W), blur_radius=0.0, faces_per_pixel=1, perspective_correct=True
    )
    packed = pix_to_face[..., 0]  # (B, H, W) index into the concatenated per-frame face lists
    covered = packed >= 0
    original = torch.cat(kept)
    tri_ids = torch.where(covered, original[packed.clamp(min=0)] if len(original) else -1, -1)
    return Fragments(
        tri_ids=tri_ids,
        bary=torch.where(covered[..., None], bary[..., 0, :], 0.0),
        depth=torch.where(covered, zbuf[..., 0], 0.0),
    )
