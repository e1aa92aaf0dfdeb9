"""Benchmark of the rasterizer: rasterize, and interpolate forward + backward, per (B, F, size).

The meshes are synthetic head-sized bulging grids (decimetres, posed at random small angles and
seen by Deep3DFaceRecon's camera, so they fill ~2/3 of the image like a face crop) with about as
many triangles as the ICT-FaceKit face region (18k) or the mediapipe face mesh (900).
Interpolation is differentiated w.r.t. the colours and the screen vertices, as in a photometric
fit. Times are the best of --repeat runs; prints a markdown table.

    .venv/bin/python scripts/bench_render.py [--device auto|cpu|cuda] [--backend auto|torch|...]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from render.camera import PerspectiveCamera, camera_to_screen, model_to_camera, pose_vertices
from render.rasterize import RasterConfig, interpolate, rasterize

SETTINGS = [
    (8, 18000, 128), (16, 18000, 128), (32, 18000, 128), (16, 18000, 224), (16, 18000, 256), (16, 900, 128), (16, 900, 256)
]  # fmt: skip
"""(B frames, F triangles, image side) combinations."""


def grid_mesh(triangles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (V, 3) bulging grid of about `triangles` triangles, counter-clockwise seen from +z."""
    n = round((triangles / 2) ** 0.5) + 1
    y, x = torch.meshgrid(torch.linspace(-1.0, 1.0, n), torch.linspace(-0.8, 0.8, n), indexing="ij")
    z = 0.9 * torch.sqrt(torch.clamp(1 - x**2 - (y / 1.3) ** 2, min=0.05))
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return torch.stack([x, y, z], -1).reshape(-1, 3), faces


def best_ms(fn, repeat: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def bench(B: int, triangles: int, size: int, backend: str, device: torch.device, repeat: int) -> dict:
    vertices, faces = grid_mesh(triangles)
    g = torch.Generator().manual_seed(0)
    angle = (torch.rand(B, 3, generator=g) - 0.5) * 0.6
    trans = (torch.rand(B, 3, generator=g) - 0.5) * 0.2
    camera = PerspectiveCamera.deep3d(size)
    posed = pose_vertices(vertices.expand(B, -1, -1), angle, trans)
    screen = camera_to_screen(model_to_camera(posed, camera), camera).to(device)
    faces = faces.to(device)
    config = RasterConfig(image_size=size, backend=backend)
    fragments = rasterize(screen, faces, config)
    colors = torch.rand(B, len(vertices), 3, generator=g).to(device).requires_grad_()
    points = screen.clone().requires_grad_()

    def interpolate_fwd_bwd() -> None:
        interpolate(colors, fragments, faces, points).sum().backward()

    raster = best_ms(lambda: rasterize(screen, faces, config), repeat, device)
    interp = best_ms(interpolate_fwd_bwd, repeat, device)
    coverage = float(fragments.mask.float().mean())
    return {"B": B, "F": len(faces), "size": size, "coverage": coverage, "raster": raster, "interp": interp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--backend", default="auto", help="rasterizer backend (RasterConfig.backend)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per setting; the best is reported")
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    rows = [bench(B, F, size, args.backend, device, args.repeat) for B, F, size in SETTINGS]
    print(
        f"device {device} ({torch.get_num_threads()} threads, {os.cpu_count()} CPUs), backend {args.backend}, "
        f"torch {torch.__version__}\n"
    )
    print(
        "| B | F | size | coverage | rasterize ms (per frame) | interpolate fwd+bwd ms (per frame) | total ms per frame |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['B']} | {r['F']} | {r['size']} | {100 * r['coverage']:.0f}% | {r['raster']:.1f} ({r['raster'] / r['B']:.2f}) | "
            f"{r['interp']:.1f} ({r['interp'] / r['B']:.2f}) | {(r['raster'] + r['interp']) / r['B']:.2f} |"
        )


if __name__ == "__main__":
    main()
