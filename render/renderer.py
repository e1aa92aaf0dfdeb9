"""Mesh renderer = camera + rasterizer + colour interpolation.

Vertices come in the posed model frame (`render.camera.pose_vertices`); colours are per vertex,
already shaded (`render.shading.shade`). The image is differentiable w.r.t. vertex positions and
colours inside the mesh (the nvdiffrast model; no silhouette gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from render.camera import PerspectiveCamera, camera_to_screen, model_to_camera
from render.rasterize import Fragments, RasterConfig, interpolate, rasterize


@dataclass(frozen=True)
class RenderOutput:
    image: Tensor
    """(B, 3, H, W) interpolated vertex colours, 0 where the mesh does not cover the pixel."""
    mask: Tensor
    """(B, 1, H, W) float, 1 where the mesh covers the pixel centre."""
    fragments: Fragments


def render_mesh(
    vertices: Tensor,
    faces: Tensor,
    vertex_colors: Tensor,
    camera: PerspectiveCamera,
    config: RasterConfig | None = None,
) -> RenderOutput:
    """Renders B frames of one mesh topology at `camera.image_size`.

    Args:
        vertices: (B, V, 3) posed model-frame vertices, decimetres.
        faces: (F, 3) long, counter-clockwise seen from outside.
        vertex_colors: (B, V, 3) or (V, 3) RGB.
        config: backend and culling; its image_size is replaced by the camera's.
    """
    config = replace(config or RasterConfig(), image_size=camera.image_size)
    screen = camera_to_screen(model_to_camera(vertices, camera), camera)  # (B, V, 3)
    fragments = rasterize(screen, faces, config)
    # Recomputing the barycentrics from the vertices is what carries gradients to them; without
    # gradients the rasterizer's own are the same numbers at a fraction of the cost.
    differentiable = torch.is_grad_enabled() and screen.requires_grad
    colors = interpolate(vertex_colors, fragments, faces, screen if differentiable else None)  # (B, H, W, 3)
    return RenderOutput(
        image=colors.permute(0, 3, 1, 2).contiguous(),
        mask=fragments.mask[:, None].to(colors.dtype),
        fragments=fragments,
    )


class MeshRenderer(nn.Module):
    """`render_mesh` with a fixed camera and rasterizer configuration."""

    def __init__(self, camera: PerspectiveCamera, config: RasterConfig | None = None) -> None:
        super().__init__()
        self.camera = camera
        self.config = config or RasterConfig()

    def forward(self, vertices: Tensor, faces: Tensor, vertex_colors: Tensor) -> RenderOutput:
        return render_mesh(vertices, faces, vertex_colors, self.camera, self.config)
