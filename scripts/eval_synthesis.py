"""The acceptance protocol of image-based face synthesis, at each clip's own resolution.

For each actor bundle ACTORS/<name> (personalized with --end, e.g. by `talkface jobs run` with
`end: 70%`), judged on the unseen tail of its video:
1. `talkface evaluate` (its report in REPORT/<name>, reused when complete): the image metrics driven
   by the real held-out coefficients, each kind made from the actor's training frames as
   `generate` makes it (synthesized; the face model's render, raw and refined, blended into the
   keyframe-matched frame with its head moved to the pose), and the generated video from the
   held-out speech (end to end: its sharpness, seam and identity);
2. the render as `evaluate` measured it before the synthesis existed: blended into the real
   held-out frame's own crop (the real frame around the face and its eyes, a head start), raw and
   refined, pasted back at the video's resolution; and, for scale, the PSNR of the real frame
   two frames (80 ms) earlier against each real frame;
3. temporal stability: on the held-out second with the least head motion, the mean absolute
   frame-to-frame change inside one fixed face box of the synthesized frames (real coefficients,
   consecutive frames) over the real frames'; and of the generated video's stillest second over
   the real video's.

    python scripts/eval_synthesis.py --actors out/actors --report out/reports --json synthesis.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from personalize.bundle import Actor
from personalize.evaluate import EvaluateConfig, evaluate, heldout_plan, heldout_video, read_report
from recon3d.landmarks import RIGID_IBUG
from recon3d.reconstruct import reconstruct_clip
from recon3d.track import TrackConfig, track_video
from recon3d.video import iter_frames
from refine.actor import ActorRefiner, face_alpha
from refine.data import face_region, render_clip
from refine.metrics import evenly_spaced, face_box, frame_difference, psnr, sharpness, ssim
from render.synthesis import FaceWarper

STILL_FRAMES = 25


def still_window(points: np.ndarray, length: int) -> slice:
    """The `length` consecutive frames whose rigid landmarks (T, 68, 2) move least."""
    motion = np.abs(np.diff(points[:, RIGID_IBUG], axis=0)).sum((1, 2))
    length = min(length, len(points))
    totals = np.convolve(motion, np.ones(max(length - 1, 1)), mode="valid")
    start = int(np.argmin(totals))
    return slice(start, start + length)


def stability(frames: np.ndarray, points: np.ndarray) -> float:
    """Mean |frame-to-frame change| of `frames` (T, H, W, 3) in the box of all their landmarks."""
    return frame_difference(frames, face_box(points.reshape(-1, 2), frames.shape[2:0:-1]))


def extras(actor: Actor, report: Path, config: EvaluateConfig) -> dict:
    """Items 2 and 3 of the module docstring."""
    with tempfile.TemporaryDirectory() as work:
        heldout, _ = heldout_video(actor, None, None, Path(work), config)
        track = track_video(heldout, TrackConfig(crop_size=actor.recon.crop.size), progress=False)
        recon, crops = reconstruct_clip(heldout, actor.face_model, config.fit, track, progress=False)
        real = np.stack(list(iter_frames(heldout)))[: recon.num_frames]
    row = {}
    # 2: the render into the real frame's own crop.
    driven = dataclasses.replace(recon, albedo=actor.recon.albedo)
    rendered, coverage = render_clip(driven, actor.face_model, crops)
    made = {"raw": rendered}
    if actor.refiner:
        region = face_region(track.crop.frame_to_crop(track.ibug68), crops.shape[1], actor.refiner.refiner.size)
        made["refined"] = ActorRefiner(actor.refiner.refiner, region).refine_sequence(rendered, coverage)
    chosen = evenly_spaced(len(real), config.image_frames)
    size = real.shape[2:0:-1]
    boxes = [face_box(track.ibug68[t], size) for t in chosen]
    # What the scale means: the real video itself 80 ms earlier, unmoved.
    earlier = [(t, b) for t, b in zip(chosen, boxes) if t >= 2]
    row["psnr_real_80ms_earlier"] = float(np.mean([psnr(real[t - 2], real[t], b) for t, b in earlier]))
    for name, stack in made.items():
        pasted = [track.crop.paste(stack[t], real[t], face_alpha(coverage[t])) for t in chosen]
        row[f"psnr_{name}_into_real"] = float(np.mean([psnr(p, real[t], b) for p, t, b in zip(pasted, chosen, boxes)]))
        row[f"ssim_{name}_into_real"] = float(np.mean([ssim(p, real[t], b) for p, t, b in zip(pasted, chosen, boxes)]))
        row[f"sharpness_{name}_into_real"] = float(np.mean([sharpness(p, b) for p, b in zip(pasted, boxes)]))
    # 3: stability of the synthesis from the real coefficients, on the stillest held-out second.
    still = still_window(track.ibug68, STILL_FRAMES)
    frames_still = np.arange(recon.num_frames)[still]
    trained, target = actor.recon.split("cpu"), recon.split("cpu")
    background, mouth = heldout_plan(actor, recon, config.generate)
    warper = FaceWarper(actor.face_model, actor.recon.crop, actor.recon.camera, config.generate.warp)
    index = torch.from_numpy(frames_still)
    warps = warper.warps(
        target[index],
        trained[torch.from_numpy(background[frames_still])],
        trained[torch.from_numpy(np.maximum(mouth[frames_still], 0))],
        track.crop,
    )
    with actor.frames() as frames:
        synthesized = np.stack(
            [
                warper.compose(frames[int(background[t])], frames[int(mouth[t])] if mouth[t] >= 0 else None, warp)
                for t, warp in zip(frames_still, warps)
            ]
        )
    points = track.ibug68[still]
    row["stability_real"] = stability(real[still], points)
    row["stability_synthesized"] = stability(synthesized, points)
    # ... and of the generated video on its own stillest second.
    generated = report / "generated.mp4"
    generated_track = track_video(generated, TrackConfig(crop_size=actor.recon.crop.size), progress=False)
    own = still_window(generated_track.ibug68, STILL_FRAMES)
    row["stability_generated"] = stability(np.stack(list(iter_frames(generated)))[own], generated_track.ibug68[own])
    row["size"] = f"{real.shape[2]}x{real.shape[1]}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=Path, required=True, help="folder of actor bundles (ACTORS/<name>)")
    parser.add_argument("--report", type=Path, required=True, help="folder of the evaluation reports")
    parser.add_argument("--only", nargs="*", help="actor names (default: every bundle in ACTORS)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    names = args.only or sorted(p.name for p in args.actors.iterdir() if (p / "manifest.json").is_file())
    config = EvaluateConfig()
    rows = []
    for name in names:
        out = args.report / name
        record = read_report(out) or evaluate(args.actors / name, out, config=config, progress=False)
        metrics = record["metrics"]
        row = {"actor": name, **extras(Actor.load(args.actors / name), out, config)}
        for key in (
            "psnr_synthesized",
            "psnr_raw",
            "psnr_refined",
            "ssim_synthesized",
            "ssim_raw",
            "ssim_refined",
            "sharpness_synthesized",
            "sharpness_raw",
            "sharpness_refined",
            "sharpness_real",
            "sharpness_generated",
            "identity_synthesized",
            "identity_raw",
            "identity_real",
            "identity_generated",
            "seam_synthesized",
            "seam_real",
            "seam_generated",
        ):
            row[key] = metrics[key]
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    ratio = lambda row, a, b: row[a] / row[b] if row.get(a) is not None and row.get(b) else float("nan")  # noqa: E731
    columns = [
        ("size", lambda r: r["size"]),
        (
            "PSNR synth / render / refined (generate's background)",
            lambda r: (r["psnr_synthesized"], r["psnr_raw"], r["psnr_refined"]),
        ),
        (
            "PSNR render / refined into the real frame",
            lambda r: (r["psnr_raw_into_real"], r.get("psnr_refined_into_real")),
        ),
        ("PSNR real 80 ms earlier", lambda r: r["psnr_real_80ms_earlier"]),
        ("SSIM synth / render", lambda r: (r["ssim_synthesized"], r["ssim_raw"])),
        (
            "sharpness / real: synth, render, generated",
            lambda r: (
                ratio(r, "sharpness_synthesized", "sharpness_real"),
                ratio(r, "sharpness_raw", "sharpness_real"),
                ratio(r, "sharpness_generated", "sharpness_real"),
            ),
        ),
        ("identity synth - real", lambda r: r["identity_synthesized"] - r["identity_real"]),
        ("seam synth / generated / real", lambda r: (r["seam_synthesized"], r["seam_generated"], r["seam_real"])),
        (
            "stability / real: synth, generated",
            lambda r: (
                ratio(r, "stability_synthesized", "stability_real"),
                ratio(r, "stability_generated", "stability_real"),
            ),
        ),
    ]
    print("| actor | " + " | ".join(name for name, _ in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")

    def cell(values) -> str:
        return " / ".join("n/a" if v is None else v if isinstance(v, str) else f"{v:.2f}" for v in values)

    for row in rows:
        print(f"| {row['actor']} | " + " | ".join(cell(tuple(np.atleast_1d(get(row)))) for _, get in columns) + " |")
    means = []
    for _, get in columns[1:]:
        parts = np.array([[np.nan if v is None else v for v in np.atleast_1d(get(row))] for row in rows], float)
        means.append(cell(tuple(None if np.isnan(m) else m for m in np.nanmean(parts, 0))))
    print("| **mean** | | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
