"""Rendering: head pose and camera, SH shading, rasterizer backends, the mesh renderer.

Frames and units are stated in `render.camera`; the rasterizer's backends and fragments in
`render.rasterize`. Typical use in a fit:

    posed = pose_vertices(vertices, angle, trans)
    colors = shade(albedo, vertex_normals(posed, faces), gamma)
    out = render_mesh(posed, faces, colors, PerspectiveCamera.deep3d(224))

`render.keyframes` picks, per output frame, the training frame that lends its background (Yi et
al.'s keyframe matching); `render.composite` blends a render into it (`blend`: colour matched at the
edge, then a feathered mask) and measures the seam.
"""

from render.camera import (
    PerspectiveCamera,
    camera_to_screen,
    euler_to_rotation_matrix,
    model_to_camera,
    pose_vertices,
    project,
    rotation_matrix_to_euler,
)
from render.composite import CompositeConfig, blend, composite, feathered_mask, match_colour, seam_visibility
from render.keyframes import BackgroundMatch, KeyframeConfig, match_backgrounds
from render.rasterize import Fragments, RasterConfig, available_backends, interpolate, rasterize
from render.renderer import MeshRenderer, RenderOutput, render_mesh
from render.shading import sh_basis, sh_shading, shade, vertex_normals

__all__ = [
    "BackgroundMatch",
    "CompositeConfig",
    "KeyframeConfig",
    "Fragments",
    "MeshRenderer",
    "PerspectiveCamera",
    "RasterConfig",
    "RenderOutput",
    "available_backends",
    "blend",
    "camera_to_screen",
    "composite",
    "euler_to_rotation_matrix",
    "feathered_mask",
    "interpolate",
    "match_backgrounds",
    "match_colour",
    "model_to_camera",
    "pose_vertices",
    "project",
    "rasterize",
    "render_mesh",
    "rotation_matrix_to_euler",
    "seam_visibility",
    "sh_basis",
    "sh_shading",
    "shade",
    "vertex_normals",
]
