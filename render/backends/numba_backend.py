"""Numba (CPU) backend: the torch reference's scan conversion, compiled, triangle by triangle.

For each frame, each triangle the reference rasterizes (`render.rasterize.visible_faces`) sets up
the same edge planes and perspective weights as `_rasterize_torch`, in the same dtype and order of
operations, tests the pixel centres of its bounding box with the same inclusive `E_k >= 0`, and
keeps the nearest in a float32 depth buffer (the float32 depth of the reference's z-buffer keys;
ties to the lowest face index, as faces go in order and only a strictly nearer one replaces). The
winners' barycentrics and depth are then computed from their stored planes. Same rules, same
floats: tri_ids equal the reference's, bary and depth agree to rounding.

The compiled kernel releases the GIL, so a batch runs on `torch.get_num_threads()` Python threads,
each on its own frames (or bands of rows, with fewer frames than threads). Compiled code is cached
on disk next to this file, or in numba's user-wide cache where that is not writable, and not at all
where neither is (then each process compiles it once: about 2 s per float dtype; loading it
from the cache takes about 0.5 s, most of it numba starting up).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
from torch import Tensor

from render.rasterize import Fragments

log = logging.getLogger("talkface")


def _jit(fn):
    """numba.njit with the on-disk cache where numba finds a writable place for it: else numba
    raises at decoration (a read-only install with no writable ~/.cache; NUMBA_CACHE_DIR helps)."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError as error:  # "cannot cache function ...: no locator available for file ..."
        log.info("numba rasterizer: compiling without an on-disk cache (%s)", error)
        return numba.njit(nogil=True)(fn)


@_jit
def _rasterize_block(u, v, z, faces, cull, half, b0, b1, r0, r1, tri_ids, bary, depth):
    """Frames [b0, b1), rows [r0, r1) of the outputs, from (B, V) u, v, z and (F, 3) faces.

    `half` is 0.5 in the dtype of u, v, z (which is the dtype of all arithmetic, as in the reference).
    """
    W = tri_ids.shape[2]
    H = tri_ids.shape[1]
    F = faces.shape[0]
    one = half + half
    planes = np.empty((F, 12), dtype=u.dtype)  # A, B, C of the three edges, then q_0, q_1, q_2
    zbuf = np.empty((r1 - r0, W), dtype=np.float32)
    cu = np.empty(W, dtype=u.dtype)  # pixel centres, exactly as the reference computes them
    for j in range(W):
        cu[j] = j  # exact
        cu[j] = cu[j] + half
    cv = np.empty(H, dtype=u.dtype)
    for i in range(H):
        cv[i] = i
        cv[i] = cv[i] + half
    for b in range(b0, b1):
        zbuf[:] = np.inf
        for i in range(r0, r1):
            for j in range(W):
                tri_ids[b, i, j] = -1
        for f in range(F):
            a0, a1, a2 = faces[f, 0], faces[f, 1], faces[f, 2]
            u0, u1, u2 = u[b, a0], u[b, a1], u[b, a2]
            v0, v1, v2 = v[b, a0], v[b, a1], v[b, a2]
            z0, z1, z2 = z[b, a0], z[b, a1], z[b, a2]
            # render.rasterize._visible; area2 is finite iff all of u, v are.
            area2 = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
            if not (z0 > 0 and z1 > 0 and z2 > 0 and np.isfinite(z0 + z1 + z2) and np.isfinite(area2)):
                continue
            if (area2 >= 0) if cull else (area2 == 0):
                continue
            # Bounding box of pixel centres, clamped before rounding as in the reference.
            i0 = max(math.ceil(min(max(min(min(v0, v1), v2) - half, -1.0), H)), 0, r0)
            i1 = min(math.floor(min(max(max(max(v0, v1), v2) - half, -1.0), H)), H - 1, r1 - 1)
            if i1 < i0:
                continue
            j0 = max(math.ceil(min(max(min(min(u0, u1), u2) - half, -1.0), W)), 0)
            j1 = min(math.floor(min(max(max(max(u0, u1), u2) - half, -1.0), W)), W - 1)
            if j1 < j0:
                continue
            s = one if area2 > 0 else -one
            pa0, pb0, pc0 = (v1 - v2) * s, (u2 - u1) * s, (u1 * v2 - v1 * u2) * s
            pa1, pb1, pc1 = (v2 - v0) * s, (u0 - u2) * s, (u2 * v0 - v2 * u0) * s
            pa2, pb2, pc2 = (v0 - v1) * s, (u1 - u0) * s, (u0 * v1 - v0 * u1) * s
            area = abs(area2)
            q0, q1, q2 = one / (area * z0), one / (area * z1), one / (area * z2)
            planes[f, 0], planes[f, 1], planes[f, 2] = pa0, pb0, pc0
            planes[f, 3], planes[f, 4], planes[f, 5] = pa1, pb1, pc1
            planes[f, 6], planes[f, 7], planes[f, 8] = pa2, pb2, pc2
            planes[f, 9], planes[f, 10], planes[f, 11] = q0, q1, q2
            for i in range(i0, i1 + 1):
                pv = cv[i]
                for j in range(j0, j1 + 1):
                    pu = cu[j]
                    e0 = pa0 * pu + pb0 * pv + pc0
                    e1 = pa1 * pu + pb1 * pv + pc1
                    e2 = pa2 * pu + pb2 * pv + pc2
                    if not ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)):  # one branch: a third of the time
                        continue
                    d = np.float32(one / (e0 * q0 + e1 * q1 + e2 * q2))
                    old = zbuf[i - r0, j]
                    # The reference's key order: a NaN depth loses to any other.
                    if tri_ids[b, i, j] < 0 or d < old or (old != old and d == d):
                        zbuf[i - r0, j] = d
                        tri_ids[b, i, j] = f
        # Resolve, as the reference does: perspective weights of the winner at the pixel centre.
        for i in range(r0, r1):
            pv = cv[i]
            for j in range(W):
                f = tri_ids[b, i, j]
                if f < 0:
                    bary[b, i, j, 0] = 0
                    bary[b, i, j, 1] = 0
                    bary[b, i, j, 2] = 0
                    depth[b, i, j] = 0
                    continue
                pu = cu[j]
                w0 = (planes[f, 0] * pu + planes[f, 1] * pv + planes[f, 2]) * planes[f, 9]
                w1 = (planes[f, 3] * pu + planes[f, 4] * pv + planes[f, 5]) * planes[f, 10]
                w2 = (planes[f, 6] * pu + planes[f, 7] * pv + planes[f, 8]) * planes[f, 11]
                inv_depth = w0 + w1 + w2
                bary[b, i, j, 0] = w0 / inv_depth
                bary[b, i, j, 1] = w1 / inv_depth
                bary[b, i, j, 2] = w2 / inv_depth
                depth[b, i, j] = one / inv_depth


_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None


def _executor(workers: int) -> ThreadPoolExecutor:
    """A pool of `workers` threads, remade after a fork (the child has none of the parent's)."""
    global _pool, _pool_key
    key = (os.getpid(), workers)
    if _pool is None or _pool_key != key:
        if _pool is not None and _pool_key[0] == key[0]:
            _pool.shutdown(wait=False)
        _pool, _pool_key = ThreadPoolExecutor(workers, thread_name_prefix="numba-raster"), key
    return _pool


def _blocks(B: int, H: int, workers: int) -> list[tuple[int, int, int, int]]:
    """(b0, b1, r0, r1) pieces of the output for `workers` threads: runs of frames, or bands of
    rows when there are fewer frames than threads."""
    if B >= workers:
        cuts = [B * k // workers for k in range(workers + 1)]
        return [(cuts[k], cuts[k + 1], 0, H) for k in range(workers) if cuts[k + 1] > cuts[k]]
    bands = -(-workers // B)
    cuts = [H * k // bands for k in range(bands + 1)]
    return [(b, b + 1, cuts[k], cuts[k + 1]) for b in range(B) for k in range(bands) if cuts[k + 1] > cuts[k]]


def rasterize(screen_vertices: Tensor, faces: Tensor, size: tuple[int, int], cull_backfaces: bool) -> Fragments:
    """(B, V, 3) (u, v, z_c) CPU tensor, (F, 3) long faces -> Fragments of size (H, W)."""
    if screen_vertices.device.type != "cpu" or faces.device.type != "cpu":
        raise ValueError("the numba backend needs CPU tensors; use backend='torch' or 'nvdiffrast' on CUDA")
    H, W = size
    B, V, _ = screen_vertices.shape
    dtype = torch.float64 if screen_vertices.dtype == torch.float64 else torch.float32
    u, v, z = (c.contiguous().numpy() for c in screen_vertices.to(dtype).unbind(-1))  # (B, V) each
    faces_np = faces.to(torch.int64).contiguous().numpy()
    if len(faces_np) and (faces_np.min() < 0 or faces_np.max() >= V):
        raise IndexError(f"faces index vertices outside [0, {V})")
    tri_ids = torch.empty((B, H, W), dtype=torch.int64)
    bary = torch.empty((B, H, W, 3), dtype=dtype)
    depth = torch.empty((B, H, W), dtype=dtype)
    if B * H * W:
        half = np.float64(0.5) if dtype == torch.float64 else np.float32(0.5)
        outputs = (tri_ids.numpy(), bary.numpy(), depth.numpy())
        args = (u, v, z, faces_np, bool(cull_backfaces), half)
        blocks = _blocks(B, H, max(1, torch.get_num_threads()))
        if len(blocks) == 1:
            _rasterize_block(*args, *blocks[0], *outputs)
        else:
            pool = _executor(len(blocks))
            for job in [pool.submit(_rasterize_block, *args, *block, *outputs) for block in blocks]:
                job.result()
    return Fragments(tri_ids=tri_ids, bary=bary, depth=depth)
