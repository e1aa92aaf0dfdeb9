import math

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from render.shading import sh_basis, sh_shading, shade, vertex_normals

AMBIENT = 0.8 * math.pi / math.sqrt(4 * math.pi)  # 0.8 * a0 * c0


def outward_sphere(count: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-sphere points and hull triangles wound counter-clockwise seen from outside."""
    points = np.random.default_rng(seed).normal(size=(count, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    faces = ConvexHull(points).simplices.copy()
    a, b, c = (points[faces[:, k]] for k in range(3))
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    faces[flip] = faces[flip][:, ::-1]
    return torch.tensor(points, dtype=torch.float32), torch.tensor(faces, dtype=torch.long)


def test_counter_clockwise_from_plus_z_gives_plus_z():
    triangle = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    normals = vertex_normals(triangle, torch.tensor([[0, 1, 2]]))
    torch.testing.assert_close(normals, torch.tensor([[0.0, 0.0, 1.0]]).expand(1, 3, 3))


def test_sphere_normals_point_outward():
    points, faces = outward_sphere()
    normals = vertex_normals(torch.stack([points, 2 * points + 1]), faces)  # also scaled and moved
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(2, len(points)))
    cosine = (normals * points).sum(-1)  # irregular random triangles: close to, not exactly, radial
    assert cosine.min() > 0.9 and cosine.mean() > 0.99


def test_cube_normals_point_outward():
    corners = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    hull_faces = ConvexHull(corners.numpy()).simplices
    faces = []
    for face in hull_faces:
        a, b, c = corners[face]
        faces.append(face if torch.dot(torch.linalg.cross(b - a, c - a), a + b + c) > 0 else face[::-1])
    normals = vertex_normals(corners[None], torch.tensor(np.array(faces), dtype=torch.long))[0]
    assert ((normals * corners / math.sqrt(3)).sum(-1) > 0.5).all()


def test_normals_are_area_weighted():
    # Vertex 0 is shared by a big triangle in the z = 0 plane and a small one in the x = 0 plane.
    vertices = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 1], [0, 1, 0]]])
    faces = torch.tensor([[0, 1, 2], [0, 4, 3]])
    normal = vertex_normals(vertices, faces)[0, 0]
    expected = torch.tensor([1.0, 0.0, 4.0]) / math.sqrt(17.0)  # areas 2 and 0.5
    torch.testing.assert_close(normal, expected)


def test_normals_are_differentiable():
    points, faces = outward_sphere(count=20)
    vertices = points.double()[None].requires_grad_()
    assert torch.autograd.gradcheck(lambda v: vertex_normals(v, faces), (vertices,))


def test_zero_gamma_is_ambient_white():
    normals = torch.nn.functional.normalize(torch.randn(2, 50, 3), dim=-1)
    torch.testing.assert_close(sh_shading(normals, torch.zeros(2, 27)), torch.full((2, 50, 3), AMBIENT))
    assert AMBIENT == pytest.approx(0.709, abs=1e-3)


def test_directional_light():
    # Band 2 of the red channel is a1 c1 z = sqrt(pi) z: light from the camera side (+z).
    gamma = torch.zeros(1, 27)
    gamma[0, 2] = 1.0
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]])
    shading = sh_shading(normals, gamma)[0]
    torch.testing.assert_close(
        shading[:, 0], torch.tensor([AMBIENT + math.sqrt(math.pi), AMBIENT - math.sqrt(math.pi), AMBIENT])
    )
    torch.testing.assert_close(shading[:, 1:], torch.full((3, 2), AMBIENT))
    # Green band 1 is -a1 c1 y.
    gamma = torch.zeros(1, 27)
    gamma[0, 9 + 1] = 1.0
    up = sh_shading(torch.tensor([[[0.0, 1.0, 0.0]]]), gamma)[0, 0]
    torch.testing.assert_close(up, torch.tensor([AMBIENT, AMBIENT - math.sqrt(math.pi), AMBIENT]))


def test_matches_deep3d_formula():
    # Deep3DFaceRecon's compute_color written out from its formula, one band at a time.
    a = [math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)]
    c = [
        1 / math.sqrt(4 * math.pi),
        math.sqrt(3.0) / math.sqrt(4 * math.pi),
        3 * math.sqrt(5.0) / math.sqrt(12 * math.pi),
    ]
    g = torch.Generator().manual_seed(3)
    n = torch.nn.functional.normalize(torch.randn(2, 40, 3, generator=g, dtype=torch.float64), dim=-1)
    gamma = 0.3 * torch.randn(2, 27, generator=g, dtype=torch.float64)
    albedo = torch.rand(2, 40, 3, generator=g, dtype=torch.float64)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    Y = torch.stack([
        a[0] * c[0] * torch.ones_like(x), -a[1] * c[1] * y, a[1] * c[1] * z, -a[1] * c[1] * x,
        a[2] * c[2] * x * y, -a[2] * c[2] * y * z, 0.5 * a[2] * c[2] / math.sqrt(3.0) * (3 * z**2 - 1),
        -a[2] * c[2] * x * z, 0.5 * a[2] * c[2] * (x**2 - y**2),
    ], dim=-1)  # fmt: skip
    torch.testing.assert_close(sh_basis(n), Y)
    lit = gamma.reshape(2, 3, 9).clone()
    lit[:, :, 0] += 0.8
    expected = torch.stack([(Y * lit[:, None, ch]).sum(-1) for ch in range(3)], dim=-1) * albedo
    torch.testing.assert_close(shade(albedo, n, gamma), expected)
    # Shared (V, 3) albedo broadcasts over the batch.
    torch.testing.assert_close(shade(albedo[0], n, gamma)[0], expected[0])


def test_gamma_shape_check():
    with pytest.raises(ValueError, match="27"):
        sh_shading(torch.zeros(1, 4, 3), torch.zeros(1, 9))
