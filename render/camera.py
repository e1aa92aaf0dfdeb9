"""Head pose and the pinhole camera: model frame -> posed model frame -> camera frame -> pixels.

Frames (the toolkit's conventions, shared with recon3d):

- Model frame: decimetres, x to the image right, y up, z out of the face toward the camera
  (OpenGL-like), head centre near the origin.
- Pose: `angle` (B, 3) radians = (pitch, yaw, roll) about x, y, z; R = Rz(roll) @ Ry(yaw) @ Rx(pitch)
  (Deep3DFaceRecon's `compute_rotation`, written for column vectors); posed v' = R v + trans.
- Camera frame (OpenCV): x right, y down, z forward. The camera sits at model z = camera_distance
  looking toward -z: (x_c, y_c, z_c) = (x', -y', camera_distance - z'), depth z_c > 0.
- Screen: u = focal x_c / z_c + cx, v = focal y_c / z_c + cy in continuous pixels, pixel (i, j)
  covering [j, j+1) x [i, i+1) in (u, v), so its centre is at (j + 0.5, i + 0.5) (as recon3d.crop).

Everything is differentiable and follows the dtype and device of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

DEEP3D_FOCAL = 1015.0
"""Deep3DFaceRecon's focal length in pixels for its 224 x 224 crops."""
DEEP3D_IMAGE_SIZE = 224
DEEP3D_CAMERA_DISTANCE = 10.0


def euler_to_rotation_matrix(angle: Tensor) -> Tensor:
    """(..., 3) (pitch, yaw, roll) radians -> (..., 3, 3) R = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    cx, cy, cz = torch.cos(angle).unbind(-1)
    sx, sy, sz = torch.sin(angle).unbind(-1)
    rows = [
        cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
        sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
        -sy, cy * sx, cy * cx,
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(angle.shape[:-1] + (3, 3))


def rotation_matrix_to_euler(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation -> (..., 3) (pitch, yaw, roll) radians; inverse of
    `euler_to_rotation_matrix` for |pitch|, |yaw| < pi / 2 (roll in (-pi, pi])."""
    pitch = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    yaw = torch.atan2(-R[..., 2, 0], torch.hypot(R[..., 2, 1], R[..., 2, 2]))
    roll = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    return torch.stack([pitch, yaw, roll], dim=-1)


@dataclass(frozen=True)
class PerspectiveCamera:
    """Pinhole camera on the model z axis, looking at the origin (see the module docstring)."""

    focal: float
    """Focal length in pixels (square pixels)."""
    cx: float
    """Principal point u in pixels (image centre: W / 2)."""
    cy: float
    """Principal point v in pixels (image centre: H / 2)."""
    image_size: tuple[int, int]
    """(H, W) of the image the camera renders."""
    camera_distance: float = DEEP3D_CAMERA_DISTANCE
    """Model-frame z of the camera centre, decimetres."""

    @classmethod
    def deep3d(cls, image_size: int = DEEP3D_IMAGE_SIZE) -> PerspectiveCamera:
        """Deep3DFaceRecon's camera (focal 1015, centre 112 at 224 px) for a square image of side
        `image_size`."""
        scale = image_size / DEEP3D_IMAGE_SIZE
        return cls(
            focal=DEEP3D_FOCAL * scale,
            cx=image_size / 2,
            cy=image_size / 2,
            image_size=(image_size, image_size),
            camera_distance=DEEP3D_CAMERA_DISTANCE,
        )

    def resized(self, image_size: int) -> PerspectiveCamera:
        """The same view rendered into a square image of side `image_size` (this camera's image
        must be square): focal and principal point scale with the side."""
        height, width = self.image_size
        if height != width:
            raise ValueError(f"resized() needs a square camera image, got (H, W) = {self.image_size}")
        scale = image_size / width
        return PerspectiveCamera(
            focal=self.focal * scale,
            cx=self.cx * scale,
            cy=self.cy * scale,
            image_size=(image_size, image_size),
            camera_distance=self.camera_distance,
        )


def pose_vertices(vertices: Tensor, angle: Tensor, trans: Tensor) -> Tensor:
    """(B, V, 3) model-frame vertices -> posed R v + trans, still in the model frame.

    Args:
        angle: (B, 3) (pitch, yaw, roll) radians.
        trans: (B, 3) decimetres.
    """
    _check_points(vertices, "vertices")
    R = euler_to_rotation_matrix(angle)  # (B, 3, 3)
    return vertices @ R.transpose(1, 2) + trans[:, None, :]


def model_to_camera(points: Tensor, camera: PerspectiveCamera) -> Tensor:
    """(B, V, 3) posed model-frame points -> camera frame (x, -y, camera_distance - z)."""
    _check_points(points, "points")
    x, y, z = points.unbind(-1)
    return torch.stack([x, -y, camera.camera_distance - z], dim=-1)


def camera_to_screen(points_cam: Tensor, camera: PerspectiveCamera) -> Tensor:
    """(B, V, 3) camera-frame points -> (B, V, 3) (u px, v px, z_c depth).

    Points at or behind the camera (z_c <= 0) give meaningless u, v; the rasterizer ignores
    triangles that have one.
    """
    _check_points(points_cam, "points_cam")
    x, y, z = points_cam.unbind(-1)
    return torch.stack([camera.focal * x / z + camera.cx, camera.focal * y / z + camera.cy, z], dim=-1)


def project(vertices: Tensor, angle: Tensor, trans: Tensor, camera: PerspectiveCamera) -> Tensor:
    """(B, V, 3) model-frame vertices + pose -> (B, V, 2) pixel coordinates (u, v)."""
    posed = pose_vertices(vertices, angle, trans)
    return camera_to_screen(model_to_camera(posed, camera), camera)[..., :2]


def _check_points(points: Tensor, name: str) -> None:
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, V, 3), got {tuple(points.shape)}")
