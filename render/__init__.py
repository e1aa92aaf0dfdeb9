"""Rendering: head pose and camera, SH shading, rasterizer backends, the mesh renderer.

Frames and units are stated in `render.camera`; the rasterizer's backends and fragments in
`render.rasterize`. Typical use in a fit:

    posed = pose_vertices(vertices, angle, trans)
    colors = shade(albedo, vertex_normals(posed, faces), gamma)
    out = render_mesh(posed, faces, colors, PerspectiveCamera.deep3d(224))

Keyframe background matching and compositing are not built yet.
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
from render.rasterize import Fragments, RasterConfig, available_backends, interpolate, rasterize
from render.renderer import MeshRenderer, RenderOutput, render_mesh
from render.shading import sh_basis, sh_shading, shade, vertex_normals

__all__ = [
    "Fragments",
    "MeshRenderer",
    "PerspectiveCamera",
    "RasterConfig",
    "RenderOutput",
    "available_backends",
    "camera_to_screen",
    "euler_to_rotation_matrix",
    "interpolate",
    "model_to_camera",
    "pose_vertices",
    "project",
    "rasterize",
    "render_mesh",
    "rotation_matrix_to_euler",
    "sh_basis",
    "sh_shading",
    "shade",
    "vertex_normals",
]
