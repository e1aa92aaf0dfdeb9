import math

import pytest
import torch

from render import (
    MeshRenderer,
    PerspectiveCamera,
    RasterConfig,
    pose_vertices,
    project,
    render_mesh,
    shade,
    vertex_normals,
)


def face_like_grid(n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """A bulging (V, 3) grid about the size of a head in decimetres, wound counter-clockwise from +z."""
    y, x = torch.meshgrid(torch.linspace(-1.0, 1.0, n), torch.linspace(-0.8, 0.8, n), indexing="ij")
    z = 0.9 * torch.sqrt(torch.clamp(1 - x**2 - (y / 1.3) ** 2, min=0.05))
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return torch.stack([x, y, z], -1).reshape(-1, 3), faces


def test_render_smoke_and_gradients():
    vertices, faces = face_like_grid()
    angle = torch.tensor([[0.1, -0.3, 0.05], [0.0, 0.2, 0.0]], requires_grad=True)
    trans = torch.tensor([[0.05, 0.0, 0.1], [0.0, -0.1, 0.0]], requires_grad=True)
    albedo = torch.full((len(vertices), 3), 0.6, requires_grad=True)
    gamma = torch.zeros(2, 27, requires_grad=True)
    posed = pose_vertices(vertices.expand(2, -1, -1), angle, trans)
    colors = shade(albedo, vertex_normals(posed, faces), gamma)
    out = render_mesh(posed, faces, colors, PerspectiveCamera.deep3d(64))
    assert out.image.shape == (2, 3, 64, 64) and out.mask.shape == (2, 1, 64, 64)
    assert out.mask.dtype == out.image.dtype and 0.2 < out.mask.mean() < 0.9
    assert (out.image * (1 - out.mask)).abs().max() == 0
    assert out.image.max() < 1.0 and out.image[out.mask.expand_as(out.image) > 0].min() > 0
    out.image.mean().backward()
    for tensor in (angle, trans, albedo, gamma):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_constant_colour_and_module():
    vertices, faces = face_like_grid(10)
    camera = PerspectiveCamera.deep3d(48)
    posed = vertices[None]
    out = render_mesh(posed, faces, torch.tensor([[0.2, 0.5, 0.9]]).expand(len(vertices), 3), camera)
    torch.testing.assert_close(out.image, torch.tensor([0.2, 0.5, 0.9])[None, :, None, None] * out.mask)
    colors = torch.rand(1, len(vertices), 3)
    module = MeshRenderer(camera, RasterConfig(image_size=999, backend="torch"))  # size comes from the camera
    torch.testing.assert_close(module(posed, faces, colors).image, render_mesh(posed, faces, colors, camera).image)


def test_rendered_mesh_lands_where_project_says():
    # A small square around a model point: its pixels centre on the projected point.
    camera = PerspectiveCamera.deep3d(224)
    centre = torch.tensor([0.3, -0.2, 0.4])
    square = centre + torch.tensor([[-0.1, -0.1, 0.0], [0.1, -0.1, 0.0], [0.1, 0.1, 0.0], [-0.1, 0.1, 0.0]])
    angle, trans = torch.zeros(1, 3), torch.tensor([[0.05, 0.1, 0.0]])
    posed = pose_vertices(square[None], angle, trans)
    out = render_mesh(posed, torch.tensor([[0, 1, 2], [0, 2, 3]]), torch.ones(4, 3), camera)
    rows, cols = torch.nonzero(out.mask[0, 0], as_tuple=True)
    found = torch.stack([cols.float().mean() + 0.5, rows.float().mean() + 0.5])
    expected = project(centre[None, None], angle, trans, camera)[0, 0]
    assert torch.linalg.norm(found - expected) < 0.5
    side = 1015 * 0.2 / (10 - 0.4)
    assert out.mask.sum() == pytest.approx(side**2, rel=0.05)
    assert math.isclose(float(out.fragments.depth[0, rows[0], cols[0]]), 9.6, rel_tol=1e-5)
