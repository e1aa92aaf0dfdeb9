"""Triangle rasterization into per-pixel fragments, and differentiable attribute interpolation.

Input vertices are in screen space (`render.camera.camera_to_screen`): (u, v) continuous pixels,
u to the right, v down, pixel (i, j) covering [j, j+1) x [i, i+1), so pixel centres are at
(j + 0.5, i + 0.5); and z_c > 0 the camera-frame depth (smaller is nearer).

The nvdiffrast model: `rasterize` finds the nearest triangle per pixel centre without gradients;
`interpolate` then recomputes the barycentrics of each pixel in torch from the vertices of its
triangle, so images are differentiable w.r.t. vertex positions and attributes (not at
silhouettes, where coverage itself changes).

Backends: "torch" (vectorised, any device, the reference) is always present; "numba" (CPU, the
same scan conversion compiled: the same floats, ~15x faster), "nvdiffrast"
(CUDA) and "pytorch3d" register only where their packages import (render.backends). All return the
same `Fragments`. `backend="auto"` picks nvdiffrast for CUDA tensors and numba for CPU ones where
they are installed, else torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

_OPTIONAL_BACKENDS = {
    "numba": ("numba", "render.backends.numba_backend"),
    "nvdiffrast": ("nvdiffrast.torch", "render.backends.nvdiffrast_backend"),
    "pytorch3d": ("pytorch3d.renderer", "render.backends.pytorch3d_backend"),
}
"""Backend name -> (the package it needs, the module wrapping it)."""
_MAX_PAIRS = 1 << 18
"""(triangle, pixel) candidates handled at once by the torch backend; bounds its memory."""
_NO_KEY = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class Fragments:
    """The nearest triangle at each pixel centre of B images of H x W."""

    tri_ids: Tensor
    """(B, H, W) long face index into `faces`, -1 where no triangle covers the pixel centre."""
    bary: Tensor
    """(B, H, W, 3) perspective-correct barycentric weights of the face's three vertices at the
    pixel centre (the weights for attributes defined in 3D, as nvdiffrast and PyTorch3D report
    them; they sum to 1), 0 at background; no gradient."""
    depth: Tensor
    """(B, H, W) camera depth z_c at the pixel centre, 0 at background."""

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool, True where a triangle covers the pixel centre."""
        return self.tri_ids >= 0

    def detach(self) -> Fragments:
        return Fragments(tri_ids=self.tri_ids, bary=self.bary.detach(), depth=self.depth.detach())


@dataclass
class RasterConfig:
    """Settings of `rasterize`."""

    image_size: int | tuple[int, int] = 224
    """Output (H, W), or the side of a square image."""
    backend: Literal["auto", "torch", "numba", "nvdiffrast", "pytorch3d"] = "auto"
    """"auto" picks nvdiffrast for CUDA tensors and numba for CPU tensors where they are installed,
    else torch."""
    cull_backfaces: bool = False
    """Drop triangles seen from behind, i.e. wound clockwise as seen from the camera (faces are
    wound counter-clockwise seen from outside); by default both windings are rasterized."""

    @property
    def size_hw(self) -> tuple[int, int]:
        size = self.image_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


RasterBackend = Callable[[Tensor, Tensor, tuple[int, int], bool], Fragments]
"""(screen_vertices (B, V, 3), faces (F, 3) long, (H, W), cull_backfaces) -> Fragments."""

_BACKENDS: dict[str, RasterBackend] = {}
_optional_loaded = False


def register_backend(name: str, backend: RasterBackend) -> None:
    """Makes `backend` selectable as RasterConfig(backend=name)."""
    _BACKENDS[name] = backend


def _load_optional_backends() -> None:
    # On first use, not at import: importing pytorch3d/nvdiffrast is slow and may fail.
    global _optional_loaded
    if _optional_loaded:
        return
    _optional_loaded = True
    for name, (package, module) in _OPTIONAL_BACKENDS.items():
        try:
            importlib.import_module(package)
        except ImportError:
            continue
        # Not guarded: with the package present, a failing wrapper is a bug to see.
        register_backend(name, importlib.import_module(module).rasterize)


def available_backends() -> list[str]:
    """Names of the backends usable here ("torch" first)."""
    _load_optional_backends()
    return list(_BACKENDS)


def rasterize(screen_vertices: Tensor, faces: Tensor, config: RasterConfig) -> Fragments:
    """Nearest triangle, barycentrics and depth at each pixel centre.

    Args:
        screen_vertices: (B, V, 3) (u, v, z_c) as in the module docstring; not differentiated.
        faces: (F, 3) long vertex indices. Triangles with a vertex at z_c <= 0 (or not finite)
            are ignored; ties in depth go to the lowest face index.
    """
    if screen_vertices.ndim != 3 or screen_vertices.shape[-1] != 3:
        raise ValueError(f"screen_vertices must have shape (B, V, 3), got {tuple(screen_vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    name = config.backend
    if name == "auto":
        preferred = "nvdiffrast" if screen_vertices.is_cuda else "numba" if screen_vertices.device.type == "cpu" else ""
        name = preferred if preferred in available_backends() else "torch"
    if name not in available_backends():
        raise ValueError(
            f"rasterizer backend {name!r} is not available here; available: {', '.join(available_backends())}"
        )
    with torch.no_grad():
        return _BACKENDS[name](screen_vertices.detach(), faces.long(), config.size_hw, config.cull_backfaces)


def visible_faces(screen_vertices: Tensor, faces: Tensor, cull_backfaces: bool) -> Tensor:
    """(B, F) bool: the triangles every backend rasterizes: all z_c > 0 and finite, not degenerate
    on screen, and front-facing when culling."""
    u, v, z = _corners(screen_vertices, faces)
    return _visible(u, v, z, cull_backfaces)


def _corners(screen_vertices: Tensor, faces: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """(B, V, 3), (F, 3) -> u, v, z, each three (B, F) tensors, one per corner."""
    # Per-coordinate gathers of contiguous tensors: much faster on CPU than indexing (B, V, 3).
    coords = [c.contiguous() for c in screen_vertices.unbind(-1)]  # 3 x (B, V)
    corner_ids = faces.t().contiguous()  # (3, F)
    u, v, z = ([c.index_select(1, corner_ids[k]) for k in range(3)] for c in coords)
    return u, v, z


def _signed_area2(u: list[Tensor], v: list[Tensor]) -> Tensor:
    """Twice the signed area of triangles with corners (u[k], v[k])."""
    return (u[1] - u[0]) * (v[2] - v[0]) - (u[2] - u[0]) * (v[1] - v[0])


def _visible(u: list[Tensor], v: list[Tensor], z: list[Tensor], cull_backfaces: bool) -> Tensor:
    area2 = _signed_area2(u, v)  # not finite iff some u or v is not
    keep = (z[0] > 0) & (z[1] > 0) & (z[2] > 0) & torch.isfinite(z[0] + z[1] + z[2]) & torch.isfinite(area2)
    # Counter-clockwise as seen from the camera has a negative area in (u, v), as v points down.
    return keep & ((area2 < 0) if cull_backfaces else (area2 != 0))


def _rasterize_torch(screen_vertices: Tensor, faces: Tensor, size: tuple[int, int], cull_backfaces: bool) -> Fragments:
    """Vectorised scan conversion over (triangle, pixel) pairs, all frames in one pass.

    Each triangle's bounding box of pixel centres gives candidate pairs; edge functions test the
    pixel centre; a z-buffer of int64 keys (float32 depth bits << 32 | triangle) keeps the nearest
    triangle, lowest index on ties, with scatter_reduce(amin). Values are kept as separate 1-D
    tensors (gathers of those are the fastest on CPU), and each triangle's first candidate is
    tested without any gather, which at face-mesh densities is most of the work.
    """
    H, W = size
    B, F = screen_vertices.shape[0], faces.shape[0]
    dtype = torch.float64 if screen_vertices.dtype == torch.float64 else torch.float32
    device = screen_vertices.device
    u, v, z = ([c.view(-1) for c in corner] for corner in _corners(screen_vertices.to(dtype), faces))  # (B F,)

    # Bounding boxes in pixel-centre indices: column j is a candidate iff u_min <= j + 0.5 <= u_max.
    # Clamping before rounding keeps huge coordinates (vertices near z_c = 0) finite.
    j0 = (torch.minimum(torch.minimum(u[0], u[1]), u[2]) - 0.5).clamp(-1, W).ceil().clamp(min=0)
    j1 = (torch.maximum(torch.maximum(u[0], u[1]), u[2]) - 0.5).clamp(-1, W).floor().clamp(max=W - 1)
    i0 = (torch.minimum(torch.minimum(v[0], v[1]), v[2]) - 0.5).clamp(-1, H).ceil().clamp(min=0)
    i1 = (torch.maximum(torch.maximum(v[0], v[1]), v[2]) - 0.5).clamp(-1, H).floor().clamp(max=H - 1)
    keep = _visible(u, v, z, cull_backfaces) & (j1 >= j0) & (i1 >= i0)
    row_len = (j1 - j0 + 1).long()
    extra = torch.where(keep, row_len * (i1 - i0 + 1).long() - 1, 0)  # candidates after the first
    j0, i0 = torch.where(keep, j0, 0).long(), torch.where(keep, i0, 0).long()  # in the image
    frame = torch.arange(B, device=device).repeat_interleave(F)

    # Edge k (opposite corner k) as a plane E_k = A u + B v + C, signed to be >= 0 inside. The two
    # triangles of a shared edge get the same floats up to sign, so no pixel centre falls between.
    area2 = _signed_area2(u, v)
    sign = torch.sign(area2)
    planes = []
    for k in range(3):
        a, b = (k + 1) % 3, (k + 2) % 3
        planes += [(v[a] - v[b]) * sign, (u[b] - u[a]) * sign, (u[a] * v[b] - v[a] * u[b]) * sign]
    # With q_k = 1 / (|area2| z_k), 1 / z_c at a point is sum_k E_k q_k (perspective-correct).
    planes += [1.0 / (area2.abs() * z[k]) for k in range(3)]  # 12 x (B F,)

    keys = torch.full((B * H * W,), _NO_KEY, dtype=torch.int64, device=device)
    ids = torch.arange(B * F, device=device)
    _depth_test(keys, planes, j0, i0, (frame * H + i0) * W + j0, ids, keep)
    layout = [row_len, j0, i0, frame]
    for start, stop in _chunks(extra):
        _scan_extra(keys, start, stop, extra, layout, planes, size)

    # Resolve: barycentrics and depth of each pixel's winner, computed over the whole grid.
    covered = keys != _NO_KEY
    winner = torch.where(covered, keys & 0xFFFFFFFF, 0)
    p = [c.index_select(0, winner) for c in planes]
    pu = (torch.arange(W, device=device, dtype=dtype) + 0.5).repeat(B * H)
    pv = (torch.arange(H, device=device, dtype=dtype) + 0.5).repeat_interleave(W).repeat(B)
    weights = torch.stack([(p[3 * k] * pu + p[3 * k + 1] * pv + p[3 * k + 2]) * p[9 + k] for k in range(3)], dim=-1)
    inv_depth = weights.sum(-1)
    bary = torch.where(covered[:, None], weights / inv_depth[:, None], 0.0)
    depth = torch.where(covered, 1.0 / inv_depth, 0.0)
    tri_ids = torch.where(covered, winner % F, -1)
    return Fragments(tri_ids=tri_ids.view(B, H, W), bary=bary.view(B, H, W, 3), depth=depth.view(B, H, W))


def _chunks(counts: Tensor) -> list[tuple[int, int]]:
    """[start, stop) ranges of triangles with at most _MAX_PAIRS candidate pixels each (a single
    larger triangle gets a range of its own); none when there are no candidates."""
    ends = counts.cumsum(0)
    total = int(ends[-1]) if len(ends) else 0
    if total <= _MAX_PAIRS:
        return [(0, len(counts))] if total else []
    ranges, start, done = [], 0, 0
    while done < total:
        stop = max(int(torch.searchsorted(ends, done + _MAX_PAIRS, right=True)), start + 1)
        ranges.append((start, stop))
        start, done = stop, int(ends[stop - 1])
    return ranges


def _scan_extra(
    keys: Tensor, start: int, stop: int, extra: Tensor, layout: list[Tensor], planes: list[Tensor],
    size: tuple[int, int],
) -> None:  # fmt: skip
    """Depth-tests the candidates after the first of triangles [start, stop) (row-major in their
    bounding boxes) into `keys`."""
    H, W = size
    n = extra[start:stop]
    total = int(n.sum())
    tri = torch.repeat_interleave(torch.arange(start, stop, device=keys.device), n, output_size=total)  # (P,)
    # Candidate index within its box: 1, 2, ... (0, the first, was tested already).
    first = torch.repeat_interleave(n.cumsum(0) - n, n, output_size=total)
    offset = torch.arange(1, total + 1, device=keys.device) - first
    row_len, j0, i0, frame = (c.index_select(0, tri) for c in layout)
    dy = torch.div(offset, row_len, rounding_mode="floor")
    j, i = j0 + (offset - dy * row_len), i0 + dy
    p = [c.index_select(0, tri) for c in planes]
    _depth_test(keys, p, j, i, (frame * H + i) * W + j, tri, None)


def _depth_test(
    keys: Tensor, p: list[Tensor], j: Tensor, i: Tensor, pixel: Tensor, tri: Tensor, valid: Tensor | None
) -> None:
    """Tests pixel centres (j + 0.5, i + 0.5) against triangles with planes `p` and keeps the
    nearest in `keys` (in place)."""
    pu, pv = j.to(p[0].dtype) + 0.5, i.to(p[0].dtype) + 0.5
    e = [p[3 * k] * pu + p[3 * k + 1] * pv + p[3 * k + 2] for k in range(3)]
    inside = (e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)
    if valid is not None:
        inside &= valid
    depth = (1.0 / (e[0] * p[9] + e[1] * p[10] + e[2] * p[11])).float()
    # Positive float32 bit patterns order like the floats they encode.
    key = torch.where(inside, (depth.view(torch.int32).long() << 32) | tri, _NO_KEY)
    keys.scatter_reduce_(0, pixel, key, reduce="amin")


register_backend("torch", _rasterize_torch)


def interpolate(
    attributes: Tensor, fragments: Fragments, faces: Tensor, screen_vertices: Tensor | None = None
) -> Tensor:
    """Per-pixel attributes: (B, V, C) or (V, C) vertex attributes -> (B, H, W, C), 0 at background.

    With `screen_vertices` (B, V, 3) (the ones rasterized), the perspective-correct barycentrics
    are recomputed from them so the result is differentiable w.r.t. vertex positions and
    attributes; without, `fragments.bary` is used (gradient w.r.t. attributes only).
    """
    B, H, W = fragments.tri_ids.shape
    if attributes.ndim not in (2, 3):
        raise ValueError(f"attributes must have shape (B, V, C) or (V, C), got {tuple(attributes.shape)}")
    V, C = attributes.shape[-2:]
    tri_ids = fragments.tri_ids.reshape(-1)
    pixels = (tri_ids >= 0).nonzero().squeeze(1)  # (N,) covered pixels
    tri = tri_ids.index_select(0, pixels)
    corners = [column.index_select(0, tri) for column in faces.t().contiguous()]  # 3 x (N,) vertex ids
    # The same corners as rows of the flattened (B V, ...) per-frame vertex tensors.
    first_row = torch.div(pixels, H * W, rounding_mode="floor") * V
    frame_rows = [c + first_row for c in corners]
    if screen_vertices is None:
        weights = fragments.bary.reshape(-1, 3).index_select(0, pixels)
    else:
        pu = (pixels % W).to(screen_vertices.dtype) + 0.5
        pv = (torch.div(pixels, W, rounding_mode="floor") % H).to(screen_vertices.dtype) + 0.5
        weights = _perspective_weights(screen_vertices.reshape(-1, 3), frame_rows, pu, pv)
    table = attributes if attributes.ndim == 2 else attributes.reshape(-1, C)
    values = [table.index_select(0, rows) for rows in (corners if attributes.ndim == 2 else frame_rows)]
    w = weights.to(table.dtype).unbind(1)
    pixel_values = w[0][:, None] * values[0] + w[1][:, None] * values[1] + w[2][:, None] * values[2]  # (N, C)
    out = pixel_values.new_zeros(B * H * W, C).index_put((pixels,), pixel_values)
    return out.view(B, H, W, C)


def _perspective_weights(points: Tensor, rows: list[Tensor], pu: Tensor, pv: Tensor) -> Tensor:
    """(B V, 3) screen vertices, 3 x (N,) corner rows, (N,) pixel centres -> (N, 3)
    perspective-correct barycentric weights, differentiable w.r.t. the vertices."""
    coords = [c.contiguous() for c in points.unbind(1)]  # 1-D gathers are the fast ones on CPU
    u, v, z = ([c.index_select(0, r) for r in rows] for c in coords)
    w = []
    for k in range(3):
        a, b = (k + 1) % 3, (k + 2) % 3
        # Twice the signed area of (corner a, corner b, pixel): screen barycentric k up to a common
        # factor, which cancels in the perspective normalisation below.
        w.append(((u[b] - u[a]) * (pv - v[a]) - (v[b] - v[a]) * (pu - u[a])) / z[k])
    total = w[0] + w[1] + w[2]
    return torch.stack([w[0] / total, w[1] / total, w[2] / total], dim=-1)
