"""Seam visibility of the rendered face pasted into the real frames, hard vs feathered masks.

Renders each frame's fitted face (albedo under the fitted light, the reconstruction's own
coefficients) into the stable crop of the real frame and reports `render.seam_visibility` (mean
gradient along the paste boundary / inside the face; ~1 = no visible seam) per clip:

    python scripts/bench_composite.py --recon CACHE/vox_00010.coeffs.npz --video CLIPS/vox_00010.mp4 \
        --face-model PATH/FaceXModel [--feathers 0 0.015 0.03 0.06]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from recon3d.facemodels import load_face_model
from recon3d.fit import render_fit
from recon3d.reconstruct import Reconstruction, front_faces
from recon3d.video import iter_frames
from render.composite import composite, feathered_mask, image_to_uint8, seam_visibility


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recon", nargs="+", required=True, help="coeffs.npz files from `talkface reconstruct`")
    parser.add_argument("--video", nargs="+", required=True, help="the clips they were made from, same order")
    parser.add_argument("--face-model", default="default")
    parser.add_argument("--feathers", type=float, nargs="+", default=[0.0, 0.015, 0.03, 0.06],
                        help="feather widths as a fraction of the crop side (0 = hard paste)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load_face_model(args.face_model)
    face = model.subset("face")
    faces = front_faces(face)
    print("| clip | frames | " + " | ".join(f"feather {f:g}" for f in args.feathers) + " |")
    print("|---" * (len(args.feathers) + 2) + "|")
    for recon_path, video in zip(args.recon, args.video):
        recon = Reconstruction.load(recon_path)
        albedo = torch.from_numpy(recon.albedo)[model.region("face")]
        coeffs = recon.split()
        scores = {f: [] for f in args.feathers}
        frames = iter_frames(video)
        for idx in torch.arange(recon.num_frames).split(16):
            with torch.no_grad():
                out = render_fit(face, coeffs[idx], albedo, recon.camera, faces)
            for image, coverage in zip(out.image, out.mask[:, 0].numpy()):
                crop = recon.crop.crop(next(frames))
                render = image_to_uint8(image)
                for f in args.feathers:
                    alpha = feathered_mask(coverage, f * crop.shape[0])
                    scores[f].append(seam_visibility(composite(render, crop, alpha), alpha))
        cells = " | ".join(f"{np.nanmean(scores[f]):.2f}" for f in args.feathers)
        print(f"| {Path(recon_path).name.split('.')[0]} | {recon.num_frames} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
