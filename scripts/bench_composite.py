"""Seam visibility of the rendered face pasted into the real frames: hard vs feathered masks, and
the default blend with vs without colour matching.

Renders each frame's fitted face (albedo under the fitted light, the reconstruction's own
coefficients) into the stable crop of the real frame and reports per clip:

- `render.seam_visibility` (mean gradient along the paste boundary / inside the face) of the plain
  composite at each feather width (0 = hard paste);
- the same at the default feather with the default colour matching (`render.blend`), and of the
  real crop itself along the same boundary: what a perfect composite would score, since the face's
  outline is an edge in the real frame too (so the floor is not 1);
- skin PSNR (dB) of the default blend without / with colour matching against the real crop, over
  the face's inside where the blend is all render (alpha >= 0.99): the correction must not take
  the face further from the real one;
- milliseconds per frame of `render.blend` with and without ("plain") colour matching.

    python scripts/bench_composite.py --recon CACHE/vox_00010.coeffs.npz --video CLIPS/vox_00010.mp4 \\
        --face-model PATH/FaceXModel [--feathers 0 0.015 0.03 0.06] [--other-expression]

`--other-expression` renders each frame with the expression of the frame half the clip away, as
generation does (the background frame's pose, the predicted expression): the face no longer
matches the frame it is pasted into, so the colour match must cope with a band that compares a
different jaw and cheeks.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recon3d.facemodels import load_face_model
from recon3d.fit import render_fit
from recon3d.reconstruct import Reconstruction, front_faces
from recon3d.video import iter_frames
from render.composite import (
    CompositeConfig,
    blend,
    composite,
    feathered_mask,
    image_to_uint8,
    seam_visibility,
)


def skin_psnr(blended: np.ndarray, real: np.ndarray, alpha: np.ndarray) -> float:
    """PSNR (dB) of `blended` against `real` where `alpha` >= 0.99 (NaN where there is none)."""
    inside = alpha >= 0.99
    if not inside.any():
        return float("nan")
    error = np.mean((blended[inside].astype(np.float32) - real[inside].astype(np.float32)) ** 2)
    return float(10 * np.log10(255.0**2 / max(float(error), 1e-10)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recon", nargs="+", required=True, help="coeffs.npz files from `talkface reconstruct`")
    parser.add_argument("--video", nargs="+", required=True, help="the clips they were made from, same order")
    parser.add_argument("--face-model", default="default")
    parser.add_argument(
        "--feathers",
        type=float,
        nargs="+",
        default=[0.0, 0.015, 0.03, 0.06],
        help="feather widths as a fraction of the crop side (0 = hard paste)",
    )
    parser.add_argument(
        "--other-expression",
        action="store_true",
        help="render each frame with the expression of the frame half the clip away",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load_face_model(args.face_model)
    face = model.subset("face")
    faces = front_faces(face)
    config = CompositeConfig()
    no_colour = dataclasses.replace(config, colour_band=0.0)
    columns = [f"feather {f:g}" for f in args.feathers] + [
        f"feather {config.feather:g} + colour",
        "real frame",
        "skin PSNR",
        "skin PSNR + colour",
        "blend ms",
        "plain ms",
    ]
    print("| clip | frames | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for recon_path, video in zip(args.recon, args.video):
        recon = Reconstruction.load(recon_path)
        albedo = torch.from_numpy(recon.albedo)[model.region("face")]
        coeffs = recon.split()
        n = recon.num_frames
        scores: dict[str, list[float]] = {c: [] for c in columns}
        frames = iter_frames(video)
        for idx in torch.arange(n).split(16):
            batch = coeffs[idx]
            if args.other_expression:
                batch = dataclasses.replace(batch, exp=coeffs[(idx + n // 2) % n].exp)
            with torch.no_grad():
                out = render_fit(face, batch, albedo, recon.camera, faces)
            for image, coverage in zip(out.image, out.mask[:, 0].numpy()):
                crop = recon.crop.crop(next(frames))
                render = image_to_uint8(image)
                for f, column in zip(args.feathers, columns):
                    alpha = feathered_mask(coverage, f * crop.shape[0])
                    scores[column].append(seam_visibility(composite(render, crop, alpha), alpha))
                start = time.perf_counter()
                blended, alpha = blend(render, crop, coverage, config)
                scores["blend ms"].append(1000 * (time.perf_counter() - start))
                start = time.perf_counter()
                plain, _ = blend(render, crop, coverage, no_colour)
                scores["plain ms"].append(1000 * (time.perf_counter() - start))
                scores[columns[len(args.feathers)]].append(seam_visibility(blended, alpha))
                scores["real frame"].append(seam_visibility(crop, alpha))
                scores["skin PSNR"].append(skin_psnr(plain, crop, alpha))
                scores["skin PSNR + colour"].append(skin_psnr(blended, crop, alpha))
        cells = " | ".join(f"{np.nanmean(scores[c]):.{1 if c.endswith(' ms') else 2}f}" for c in columns)
        print(f"| {Path(recon_path).name.split('.')[0]} | {n} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
