import importlib
import importlib.util

import numpy as np
import pytest
import torch

from render.rasterize import Fragments, RasterConfig, available_backends, interpolate, rasterize

TORCH = RasterConfig(backend="torch")
# `import render.rasterize` would give the function that the package re-exports under that name.
rasterize_module = importlib.import_module("render.rasterize")


OPTIONAL_BACKENDS = {"numba": "cpu", "nvdiffrast": "cuda", "pytorch3d": "any"}
"""Backend -> the device it rasterizes on ("any": CUDA where there is one)."""


def optional_backend_cases(names=tuple(OPTIONAL_BACKENDS)):
    cases = []
    for name in names:
        reason = f"{name} is not installed" if importlib.util.find_spec(name) is None else None
        if reason is None and OPTIONAL_BACKENDS[name] == "cuda" and not torch.cuda.is_available():
            reason = f"{name} needs CUDA"
        cases.append(pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=reason or "")))
    return cases


CPU_BACKENDS = ["torch", *optional_backend_cases(["numba"])]
"""The backends held to every rule of the reference on the CPU below: torch, the reference itself,
and numba, which reproduces it (same floats)."""


def reference_rasterize(screen: np.ndarray, faces: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Slow, obviously correct: every triangle against every pixel centre, in float64.

    Returns (B, H, W) winning face ids (-1: none; ties to the lowest id) and depths (inf: none).
    """
    B = screen.shape[0]
    ids = np.full((B, H, W), -1)
    depth = np.full((B, H, W), np.inf)
    for b in range(B):
        for f, face in enumerate(faces):
            lam, z = reference_barycentrics(screen[b, face], H, W)
            if lam is None:
                continue
            inside = (lam >= 0).all(0) & (z < depth[b])
            ids[b][inside], depth[b][inside] = f, z[inside]
    return ids, depth


def reference_barycentrics(corners: np.ndarray, H: int, W: int):
    """(3, 3) corners (u, v, z_c) -> screen barycentrics (3, H, W) and depth (H, W) at every pixel
    centre, or (None, None) for a triangle that is never drawn."""
    corners = corners.astype(np.float64)
    (u0, v0, _), (u1, v1, _), (u2, v2, _) = corners
    area2 = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    if (corners[:, 2] <= 0).any() or area2 == 0:
        return None, None
    pu, pv = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    lam = []
    for k in range(3):
        (ua, va, _), (ub, vb, _) = corners[(k + 1) % 3], corners[(k + 2) % 3]
        lam.append(((ub - ua) * (pv - va) - (vb - va) * (pu - ua)) / area2)
    lam = np.stack(lam)
    return lam, 1.0 / np.einsum("khw,k->hw", lam, 1.0 / corners[:, 2])


def random_mesh(seed: int, B: int = 2, V: int = 40, F: int = 30, H: int = 24, W: int = 31, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    screen = np.stack([rng.uniform(-6, W + 6, (B, V)), rng.uniform(-6, H + 6, (B, V)), rng.uniform(1, 5, (B, V))], -1)
    faces = np.stack([rng.choice(V, 3, replace=False) for _ in range(F)])
    return torch.tensor(screen, dtype=dtype), torch.tensor(faces)


def config(H: int, W: int, backend: str = "torch", **kwargs) -> RasterConfig:
    return RasterConfig(image_size=(H, W), backend=backend, **kwargs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_matches_reference_in_float64(seed, backend):
    screen, faces = random_mesh(seed, dtype=torch.float64)
    ids, depth = reference_rasterize(screen.numpy(), faces.numpy(), 24, 31)
    fragments = rasterize(screen, faces, config(24, 31, backend=backend))
    np.testing.assert_array_equal(fragments.tri_ids.numpy(), ids)
    covered = ids >= 0
    np.testing.assert_allclose(fragments.depth.numpy()[covered], depth[covered], rtol=1e-12)
    assert (fragments.depth.numpy()[~covered] == 0).all()
    check_barycentrics(fragments, screen, faces)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_matches_reference_in_float32_up_to_edge_ties(seed, backend):
    screen, faces = random_mesh(100 + seed)
    H, W = 24, 31
    ids, depth = reference_rasterize(screen.numpy(), faces.numpy(), H, W)
    fragments = rasterize(screen, faces, config(H, W, backend=backend))
    ours = fragments.tri_ids.numpy()
    for b, i, j in zip(*np.nonzero(ours != ids)):
        # Only where the two candidates are within rounding of an edge or of each other's depth.
        ours_lam, ours_z = reference_at(screen[b], faces, ours[b, i, j], i, j, H, W)
        ref_lam, ref_z = reference_at(screen[b], faces, ids[b, i, j], i, j, H, W)
        near_edge = min(abs(ours_lam.min()), abs(ref_lam.min())) < 1e-4
        assert ours_lam.min() > -1e-4 and (near_edge or abs(ours_z - ref_z) < 1e-5 * ref_z)
    assert (ours != ids).mean() < 0.01
    same = ours == ids
    np.testing.assert_allclose(fragments.depth.numpy()[same & (ids >= 0)], depth[same & (ids >= 0)], rtol=1e-5)
    check_barycentrics(fragments, screen.double(), faces, atol=1e-4)


def reference_at(screen, faces, face, i, j, H, W):
    if face < 0:
        return np.array([-1.0]), np.inf
    lam, z = reference_barycentrics(screen[faces[face]].numpy(), H, W)
    return lam[:, i, j], z[i, j]


def check_barycentrics(fragments: Fragments, screen: torch.Tensor, faces: torch.Tensor, atol: float = 1e-9):
    """Perspective-correct barycentrics reproduce the pixel centre and its depth."""
    B, H, W = fragments.tri_ids.shape
    mask = fragments.mask
    corners = screen[torch.arange(B)[:, None, None, None], faces[fragments.tri_ids.clamp(min=0)]]  # (B, H, W, 3, 3)
    bary = fragments.bary.double()
    # Camera-frame points are linear in perspective-correct barycentrics: z, and (u, v) * z.
    z = (bary * corners[..., 2]).sum(-1)
    u = (bary * corners[..., 0] * corners[..., 2]).sum(-1) / z
    v = (bary * corners[..., 1] * corners[..., 2]).sum(-1) / z
    pu, pv = torch.meshgrid(torch.arange(W) + 0.5, torch.arange(H) + 0.5, indexing="xy")
    torch.testing.assert_close(u[mask], pu.expand(B, H, W)[mask].double(), atol=atol * 100, rtol=0)
    torch.testing.assert_close(v[mask], pv.expand(B, H, W)[mask].double(), atol=atol * 100, rtol=0)
    torch.testing.assert_close(z[mask], fragments.depth[mask].double(), atol=atol * 10, rtol=1e-6)
    torch.testing.assert_close(bary.sum(-1)[mask], torch.ones_like(z[mask]), atol=atol, rtol=0)
    assert (fragments.bary[~mask] == 0).all()


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_nearer_triangle_wins(order, backend):
    near = [[2.0, 2.0, 3.0], [14.0, 2.0, 3.0], [2.0, 14.0, 3.0]]
    far = [[1.0, 1.0, 4.0], [15.0, 1.0, 4.0], [1.0, 15.0, 4.0]]
    screen = torch.tensor([near + far])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])[order]
    fragments = rasterize(screen, faces, config(16, 16, backend=backend))
    near_id = order.index(0)
    assert fragments.tri_ids[0, 5, 5] == near_id and fragments.depth[0, 5, 5] == pytest.approx(3.0)
    assert fragments.tri_ids[0, 1, 1] == 1 - near_id  # only the far one reaches there


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_equal_depth_goes_to_the_lowest_index(backend):
    corners = [[0.0, 0.0, 2.0], [16.0, 0.0, 2.0], [0.0, 16.0, 2.0]]
    faces = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    fragments = rasterize(torch.tensor([corners]), faces, config(16, 16, backend=backend))
    assert (fragments.tri_ids[fragments.mask] == 0).all()


@pytest.mark.parametrize("bad_depth", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_triangles_at_or_behind_the_camera_are_ignored(bad_depth, backend):
    screen = torch.tensor([[[0.0, 0.0, 5.0], [16.0, 0.0, 5.0], [0.0, 16.0, bad_depth], [0.0, 16.0, 5.0]]])
    fragments = rasterize(screen, torch.tensor([[0, 1, 2]]), config(16, 16, backend=backend))
    assert not fragments.mask.any()
    fragments = rasterize(screen, torch.tensor([[0, 1, 2], [0, 1, 3]]), config(16, 16, backend=backend))
    assert set(fragments.tri_ids.unique().tolist()) == {-1, 1}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_nan_coordinates_are_ignored(backend):
    screen = torch.tensor([[[float("nan"), 0.0, 5.0], [16.0, 0.0, 5.0], [0.0, 16.0, 5.0], [16.0, 16.0, 5.0]]])
    fragments = rasterize(screen, torch.tensor([[0, 1, 2], [1, 3, 2]]), config(16, 16, backend=backend))
    assert set(fragments.tri_ids.unique().tolist()) == {-1, 1}


@pytest.mark.parametrize("size", [(64, 64), (48, 80), (256, 256)])
@pytest.mark.parametrize("margin", [0.0, 1000.0])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_full_screen_quad(size, margin, backend):
    H, W = size
    corners = [
        [-margin, -margin, 2.0],
        [W + margin, -margin, 3.0],
        [W + margin, H + margin, 2.0],
        [-margin, H + margin, 1.5],
    ]
    fragments = rasterize(torch.tensor([corners]), torch.tensor([[0, 1, 2], [0, 2, 3]]), config(H, W, backend=backend))
    assert fragments.mask.all()  # no holes along the diagonal, which runs through pixel centres
    assert set(fragments.tri_ids.unique().tolist()) == {0, 1}


def test_chunked_scan_gives_the_same_fragments(monkeypatch):
    screen, faces = random_mesh(7, F=60)
    expected = rasterize(screen, faces, config(24, 31))
    monkeypatch.setattr(rasterize_module, "_MAX_PAIRS", 16)
    chunked = rasterize(screen, faces, config(24, 31))
    torch.testing.assert_close(chunked.tri_ids, expected.tri_ids)
    torch.testing.assert_close(chunked.bary, expected.bary)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_shared_edges_leave_no_holes(backend):
    # A jittered grid of 2 x 14 x 14 triangles over [4, 60)^2: every pixel centre inside is covered.
    g = torch.Generator().manual_seed(5)
    t = torch.linspace(4.0, 60.0, 15)
    vv, uu = torch.meshgrid(t, t, indexing="ij")
    jitter = (torch.rand(2, 15, 15, generator=g) - 0.5) * 3.0
    jitter[:, [0, -1], :] = 0
    jitter[:, :, [0, -1]] = 0
    points = torch.stack([uu + jitter[0], vv + jitter[1], 2 + torch.rand(15, 15, generator=g)], -1).reshape(1, -1, 3)
    idx = torch.arange(225).reshape(15, 15)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    mask = rasterize(points, faces, config(64, 64, backend=backend)).mask[0]
    assert mask[4:60, 4:60].all() and mask.sum() == 56 * 56


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_pixel_centre_convention(backend):
    # Corners on pixel centres: (j + 0.5, i + 0.5). Edges through pixel centres are inside.
    screen = torch.tensor([[[0.5, 0.5, 1.0], [4.5, 0.5, 1.0], [0.5, 4.5, 1.0]]])
    mask = rasterize(screen, torch.tensor([[0, 1, 2]]), config(8, 8, backend=backend)).mask[0]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    for i in range(5):
        expected[i, : 5 - i] = True  # centres with (j + 0.5) + (i + 0.5) <= 5
    torch.testing.assert_close(mask, expected)
    # A sliver between two columns of centres covers nothing; v points down the rows.
    sliver = torch.tensor([[[0.6, 0.0, 1.0], [0.9, 0.0, 1.0], [0.9, 8.0, 1.0]]])
    assert not rasterize(sliver, torch.tensor([[0, 1, 2]]), config(8, 8, backend=backend)).mask.any()
    top_right = torch.tensor([[[6.0, 0.0, 1.0], [8.0, 0.0, 1.0], [8.0, 2.0, 1.0]]])
    mask = rasterize(top_right, torch.tensor([[0, 1, 2]]), config(8, 8, backend=backend)).mask[0]
    assert mask[0, 7] and mask[1, 7] and not mask[7, 0]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backface_culling(backend):
    # Counter-clockwise in the y-up model frame = clockwise on screen (v down) = front-facing.
    front = [[2.0, 14.0, 2.0], [14.0, 14.0, 2.0], [2.0, 2.0, 2.0]]
    screen = torch.tensor([front])
    for winding, is_front in (([0, 1, 2], True), ([0, 2, 1], False)):
        faces = torch.tensor([winding])
        assert rasterize(screen, faces, config(16, 16, backend=backend)).mask.any()
        assert rasterize(screen, faces, config(16, 16, backend=backend, cull_backfaces=True)).mask.any() == is_front


def test_fragments_helpers_and_errors():
    screen, faces = random_mesh(9)
    fragments = rasterize(screen, faces.int(), RasterConfig(image_size=(24, 31)))  # "auto": numba or torch
    assert fragments.tri_ids.dtype == torch.int64 and fragments.bary.shape == (2, 24, 31, 3)
    assert torch.equal(fragments.mask, fragments.tri_ids >= 0) and fragments.detach().bary is not None
    assert (fragments.depth[~fragments.mask] == 0).all()
    assert available_backends()[0] == "torch"
    with pytest.raises(ValueError, match="available: torch"):
        rasterize(screen, faces, RasterConfig(backend="opengl"))
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        rasterize(screen[0], faces, TORCH)
    empty = rasterize(screen * torch.tensor([1.0, 1.0, -1.0]), faces, config(4, 5))
    assert not empty.mask.any() and empty.depth.shape == (2, 4, 5)


def test_interpolate_constant_and_depth():
    screen, faces = random_mesh(11)
    fragments = rasterize(screen, faces, config(24, 31))
    ones = interpolate(torch.ones(40, 2), fragments, faces)
    torch.testing.assert_close(ones, fragments.mask[..., None].float().expand(-1, -1, -1, 2))
    # Camera depth is linear in perspective-correct weights, so it interpolates to the fragment depth.
    depth = interpolate(screen[..., 2:], fragments, faces, screen)[..., 0]
    torch.testing.assert_close(depth, fragments.depth, atol=1e-4, rtol=1e-5)
    # With or without the vertices: the same values.
    colors = torch.rand(2, 40, 3)
    with_vertices = interpolate(colors, fragments, faces, screen)
    torch.testing.assert_close(interpolate(colors, fragments, faces), with_vertices, atol=1e-5, rtol=1e-4)


def test_interpolate_gradients():
    screen = torch.tensor(
        [
            [[1.0, 1.0, 2.0], [9.0, 2.0, 2.5], [2.0, 9.0, 3.0], [9.5, 9.5, 2.2]],
            [[0.5, 8.0, 3.0], [8.0, 0.5, 2.0], [9.0, 9.0, 2.5], [0.2, 0.4, 2.0]],
        ],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    fragments = rasterize(screen, faces, config(10, 10))
    assert fragments.mask.sum() > 60
    g = torch.Generator().manual_seed(0)
    attributes = torch.rand(2, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    vertices = screen.clone().requires_grad_()
    # Fragments stay fixed, so every covered pixel keeps its triangle under the perturbation.
    assert torch.autograd.gradcheck(lambda a, v: interpolate(a, fragments, faces, v), (attributes, vertices))
    shared = torch.rand(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: interpolate(a, fragments, faces), (shared,))


@pytest.mark.parametrize("backend", optional_backend_cases())
@pytest.mark.parametrize("cull", [False, True])
def test_optional_backend_matches_torch(backend, cull):
    device = "cuda" if torch.cuda.is_available() and OPTIONAL_BACKENDS[backend] != "cpu" else "cpu"
    screen, faces = random_mesh(13, B=3, V=60, F=50, H=40, W=56)
    screen, faces = screen.to(device), faces.to(device)
    screen[1, :5, 2] = -1.0  # some triangles behind the camera
    expected = rasterize(screen, faces, RasterConfig(image_size=(40, 56), backend="torch", cull_backfaces=cull))
    actual = rasterize(screen, faces, RasterConfig(image_size=(40, 56), backend=backend, cull_backfaces=cull))
    same = actual.tri_ids == expected.tri_ids
    assert same.float().mean() > 0.99  # differences only on edge ties
    torch.testing.assert_close(actual.bary[same], expected.bary[same], atol=1e-3, rtol=0)
    torch.testing.assert_close(actual.depth[same], expected.depth[same], atol=1e-3, rtol=1e-4)


needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cull", [False, True])
def test_numba_reproduces_torch(dtype, cull):
    # The same floats in the same order: the same winners, and barycentrics and depth to rounding.
    for seed in range(8):
        screen, faces = random_mesh(200 + seed, B=3, V=60, F=80, H=40, W=56, dtype=dtype)
        screen[1, :5, 2] = -1.0
        screen[2, 5, 0] = float("nan")
        expected = rasterize(screen, faces, config(40, 56, cull_backfaces=cull))
        actual = rasterize(screen, faces, config(40, 56, backend="numba", cull_backfaces=cull))
        assert torch.equal(actual.tri_ids, expected.tri_ids)
        assert actual.bary.dtype == dtype and actual.depth.dtype == dtype
        tol = {"atol": 1e-6, "rtol": 1e-6} if dtype == torch.float32 else {"atol": 1e-13, "rtol": 1e-13}
        torch.testing.assert_close(actual.bary, expected.bary, **tol)
        torch.testing.assert_close(actual.depth, expected.depth, **tol)


@needs_numba
@pytest.mark.parametrize("B", [1, 2, 5])
def test_numba_threads_split_frames_and_rows(B):
    # Frames are shared out among torch.get_num_threads() threads, or rows when frames are fewer.
    screen, faces = random_mesh(31, B=B, V=60, F=80, H=40, W=56)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 8):
            torch.set_num_threads(n)
            results.append(rasterize(screen, faces, config(40, 56, backend="numba")))
    finally:
        torch.set_num_threads(threads)
    for fragments in results[1:]:
        assert torch.equal(fragments.tri_ids, results[0].tri_ids) and torch.equal(fragments.bary, results[0].bary)
        assert torch.equal(fragments.depth, results[0].depth)


@needs_numba
def test_numba_edge_cases():
    numba_backend = importlib.import_module("render.backends.numba_backend")
    screen, faces = random_mesh(3)
    empty = rasterize(screen, faces[:0], config(6, 7, backend="numba"))
    assert not empty.mask.any() and empty.bary.shape == (2, 6, 7, 3) and (empty.depth == 0).all()
    assert rasterize(screen[:0], faces, config(6, 7, backend="numba")).tri_ids.shape == (0, 6, 7)
    with pytest.raises(IndexError):
        rasterize(screen, faces.clamp(max=5) + 40, config(6, 7, backend="numba"))
    half = rasterize(screen.half(), faces, config(24, 31, backend="numba"))  # computed in float32, like torch
    assert half.depth.dtype == torch.float32
    assert torch.equal(half.tri_ids, rasterize(screen.half(), faces, config(24, 31)).tri_ids)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CPU"):
            numba_backend.rasterize(screen.cuda(), faces.cuda(), (6, 7), False)


@needs_numba
def test_numba_is_the_cpu_default(monkeypatch):
    assert "numba" in available_backends()
    calls = []
    numba_rasterize = rasterize_module._BACKENDS["numba"]
    monkeypatch.setitem(rasterize_module._BACKENDS, "numba", lambda *args: calls.append(1) or numba_rasterize(*args))
    screen, faces = random_mesh(5)
    rasterize(screen, faces, RasterConfig(image_size=(24, 31)))
    assert calls == [1]


@needs_numba
def test_numba_compiles_without_a_writable_cache(monkeypatch):
    # Where numba finds nowhere to write its cache (a read-only install, no writable ~/.cache),
    # njit(cache=True) raises; the backend then compiles in memory.
    import numba

    numba_backend = importlib.import_module("render.backends.numba_backend")
    njit = numba.njit

    def no_cache_njit(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", no_cache_njit)

    def add_one(x):
        return x + 1

    assert numba_backend._jit(add_one)(1) == 2


def subdivided(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each triangle into four at its edge midpoints (shared edges share the midpoint)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
    V, F = vertices.shape[-2], len(faces)
    mid = (vertices[..., unique[:, 0], :] + vertices[..., unique[:, 1], :]) / 2
    m01, m12, m20 = (V + inverse).view(3, F)
    a, b, c = faces.unbind(1)
    new_faces = torch.cat([torch.stack(t, 1) for t in ([a, m01, m20], [m01, b, m12], [m20, m12, c], [m01, m12, m20])])
    return torch.cat([vertices, mid], dim=-2), new_faces


@needs_numba
def test_numba_renders_a_face_like_torch():
    # The built-in face subdivided twice, ~14k triangles as ICT-FaceKit's face, in four poses.
    from recon3d.facemodels import load_face_model
    from render.camera import PerspectiveCamera, pose_vertices
    from render.renderer import render_mesh

    model = load_face_model("builtin").subset("face")
    vertices, faces = model.mean_shape, model.faces
    colors = model.albedo(None).reshape(-1, 3)
    for _ in range(2):
        vertices, faces = subdivided(torch.cat([vertices, colors], 1), faces)
        vertices, colors = vertices[:, :3], vertices[:, 3:]
    assert len(faces) > 13000
    g = torch.Generator().manual_seed(0)
    angle = torch.deg2rad((torch.rand(4, 3, generator=g) * 2 - 1) * 25)
    trans = (torch.rand(4, 3, generator=g) - 0.5) * 0.2
    posed = pose_vertices(vertices.expand(4, -1, -1), angle, trans)
    camera = PerspectiveCamera.deep3d(128)
    expected = render_mesh(posed, faces, colors, camera, RasterConfig(backend="torch"))
    actual = render_mesh(posed, faces, colors, camera, RasterConfig(backend="numba"))
    assert expected.mask.mean() > 0.2
    both = (expected.mask * actual.mask).bool().expand_as(expected.image)
    assert (expected.mask != actual.mask).float().mean() < 1e-4
    assert (expected.fragments.tri_ids != actual.fragments.tri_ids).float().mean() < 1e-4
    torch.testing.assert_close(actual.image[both], expected.image[both], atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_backend_on_cuda_matches_cpu():
    screen, faces = random_mesh(17, B=3, V=60, F=50, H=40, W=56)
    expected = rasterize(screen, faces, config(40, 56))
    actual = rasterize(screen.cuda(), faces.cuda(), config(40, 56))
    same = actual.tri_ids.cpu() == expected.tri_ids
    assert same.float().mean() > 0.99
    torch.testing.assert_close(actual.bary.cpu()[same], expected.bary[same], atol=1e-4, rtol=0)
    colors = torch.rand(3, 60, 3)
    image = interpolate(colors.cuda(), actual, faces.cuda(), screen.cuda()).cpu()
    torch.testing.assert_close(image[same], interpolate(colors, expected, faces, screen)[same], atol=1e-4, rtol=0)
