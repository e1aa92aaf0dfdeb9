import math

import pytest
import torch

from render.camera import (
    PerspectiveCamera,
    camera_to_screen,
    euler_to_rotation_matrix,
    model_to_camera,
    pose_vertices,
    project,
    rotation_matrix_to_euler,
)


def test_rotation_round_trip():
    g = torch.Generator().manual_seed(0)
    angle = torch.stack(
        [
            (torch.rand(200, generator=g) - 0.5) * math.radians(170),  # pitch in (-85, 85) deg
            (torch.rand(200, generator=g) - 0.5) * math.radians(170),  # yaw
            (torch.rand(200, generator=g) - 0.5) * 2 * math.pi * 0.999,  # roll
        ],
        dim=-1,
    ).double()
    R = euler_to_rotation_matrix(angle)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(200, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=torch.float64))
    torch.testing.assert_close(rotation_matrix_to_euler(R), angle)


def test_known_rotations_and_order():
    x, y, z = torch.eye(3)
    quarter = math.pi / 2
    pitch, yaw, roll = (
        euler_to_rotation_matrix(torch.tensor(a)) for a in ([quarter, 0, 0], [0, quarter, 0], [0, 0, quarter])
    )
    torch.testing.assert_close(pitch @ y, z, atol=1e-6, rtol=0)  # pitch turns the face's up (y) toward the camera (z)
    torch.testing.assert_close(yaw @ z, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(roll @ x, y, atol=1e-6, rtol=0)
    angle = torch.tensor([0.3, -0.2, 0.5])
    Rx, Ry, Rz = (euler_to_rotation_matrix(angle * mask) for mask in torch.eye(3))
    torch.testing.assert_close(euler_to_rotation_matrix(angle), Rz @ Ry @ Rx)
    # Batch dimensions are free.
    assert euler_to_rotation_matrix(torch.zeros(4, 5, 3)).shape == (4, 5, 3, 3)


def test_deep3d_camera_and_resize():
    camera = PerspectiveCamera.deep3d()
    assert camera == PerspectiveCamera(focal=1015.0, cx=112.0, cy=112.0, image_size=(224, 224), camera_distance=10.0)
    half = PerspectiveCamera.deep3d(112)
    assert half == camera.resized(112)
    assert half.focal == pytest.approx(507.5) and half.cx == 56.0
    assert half.resized(224) == camera
    with pytest.raises(ValueError, match="square"):
        PerspectiveCamera(focal=100.0, cx=32.0, cy=24.0, image_size=(48, 64)).resized(32)


def test_project_matches_deep3d_numbers():
    camera = PerspectiveCamera.deep3d()
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.2, 1.0]]])
    uv = project(points, torch.zeros(1, 3), torch.zeros(1, 3), camera)
    expected = [[112.0, 112.0], [122.15, 112.0], [112.0, 112.0 - 10.15], [112 + 101.5 / 9, 112 - 203.0 / 9]]
    torch.testing.assert_close(uv, torch.tensor([expected]))
    # The third coordinate of the screen points is the camera depth.
    screen = camera_to_screen(model_to_camera(points, camera), camera)
    torch.testing.assert_close(screen[0, :, 2], torch.tensor([10.0, 10.0, 10.0, 9.0]))


def test_project_matches_a_hand_written_deep3d_pipeline():
    # Deep3DFaceRecon: rotate (row vectors times R^T), translate, z -> 10 - z, pinhole with y up,
    # then v = 224 - y_image.
    g = torch.Generator().manual_seed(1)
    vertices = torch.randn(3, 50, 3, generator=g, dtype=torch.float64) * 0.5
    angle = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.3
    trans = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.1
    uv = project(vertices, angle, trans, PerspectiveCamera.deep3d())
    R = euler_to_rotation_matrix(angle)
    posed = torch.einsum("bvj,bij->bvi", vertices, R) + trans[:, None]
    depth = 10.0 - posed[..., 2]
    u = 1015.0 * posed[..., 0] / depth + 112.0
    v = 224.0 - (1015.0 * posed[..., 1] / depth + 112.0)
    torch.testing.assert_close(uv, torch.stack([u, v], dim=-1))


def test_pose_and_projection_are_differentiable_and_keep_dtype():
    camera = PerspectiveCamera.deep3d(64)
    g = torch.Generator().manual_seed(2)
    vertices = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    angle = (0.3 * torch.randn(2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    trans = (0.1 * torch.randn(2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    assert project(vertices, angle, trans, camera).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda v, a, t: project(v, a, t, camera), (vertices, angle, trans))
    assert torch.autograd.gradcheck(
        rotation_matrix_to_euler, (euler_to_rotation_matrix(angle.detach()).requires_grad_(),)
    )
    # pose_vertices is R v + t.
    posed = pose_vertices(vertices, angle, trans)
    torch.testing.assert_close(posed[0, 0], euler_to_rotation_matrix(angle[0]) @ vertices[0, 0] + trans[0])


def test_shape_check():
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        pose_vertices(torch.zeros(5, 3), torch.zeros(1, 3), torch.zeros(1, 3))
