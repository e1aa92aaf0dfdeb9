"""The end-to-end acceptance protocol of `personalize` + `generate`: per clip, personalize an actor
on the first 70% of its frames, generate the last 30% from its audio, and compare the generated
video with the real one.

Per clip (WORK/<stem>/ holds everything; a rerun reuses the cut, the tracks, the reconstruction and
the finished personalize stages, and regenerates the videos):

1. cut = round(0.7 T) of the clip's T frames at 25 fps; train.mp4 = frames 0..cut-1 with their
   audio, test.wav = the audio of frames cut..T-1 (16 kHz mono float32, samples from cut * 640);
2. `personalize(train.mp4, WORK/<stem>/actor)`;
3. per pose mode, `generate(actor, test.wav, WORK/<stem>/<mode>.mp4)`: seam visibility and
   generation speed from its `GenerateResult`;
4. metrics:
   - mouth r: Pearson r of the 2D inner-lip aperture (mean distance of the iBUG inner-lip pairs
     over the outer-eye-corner distance, on `track_video`'s iBUG-68 landmarks) of the generated
     video and of the real test frames (the whole clip is tracked once and cut). Baseline
     "replay": the real training frames' aperture (its first len(test) frames) against the real
     test frames: what no lip sync scores.
   - HS (`audio2pose.metrics.pose_similarity`) of the real test frames' head angles against the
     generated ones. Real angles: a reconstruction of the whole clip (`--recon-cache
     DIR/<stem>.coeffs.npz` when there, else `reconstruct_clip` into WORK/<stem>/full.coeffs.npz).
     Generated angles: the poses `generate` rendered (`GenerateResult.angles`), rather than a
     reconstruction of the generated video. Baselines: a static head at the training frames' mean
     pose, and the training frames' poses replayed (both from the whole-clip reconstruction).
     `angle_offset` (JSON) is the mean |actor reconstruction - whole-clip reconstruction| angle
     over the training frames, degrees: reassign / source poses come from the actor's own fit,
     the reference from the other, so that much W1 is reconstruction disagreement, not motion.
   - personalize seconds (sum of the bundle manifest's stage seconds: the first run's, a resumed
     stage keeps its recorded time).

    TALKFACE_HOME=... python scripts/eval_generate.py --face-model ict --recon-cache CACHE \
        --work /tmp/eval_gen --json eval_gen.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import torch

from audio2pose.metrics import ANGLE_NAMES, landmark_aperture, pearson, pose_baselines, pose_similarity
from personalize.bundle import Actor
from personalize.generate import POSE_MODES, GenerateConfig, generate
from personalize.pipeline import PersonalizeConfig, personalize
from recon3d.device import resolve_device
from recon3d.facemodels import load_face_model
from recon3d.pretrain import corpus_videos
from recon3d.reconstruct import Reconstruction, reconstruct_clip
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import AUDIO_RATE, VIDEO_FPS, atomic_path, read_audio, trim_video

log = logging.getLogger("eval_generate")

DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
SAMPLES_PER_FRAME = int(round(AUDIO_RATE / VIDEO_FPS))  # 640


# ------------------------------------------------------------------------------------ inputs


def cached_track(video: Path, path: Path, progress: bool) -> FaceTrack:
    if path.exists():
        return FaceTrack.load(path)
    track = track_video(video, TrackConfig(), progress=progress)
    track.save(path)
    return track


def cut_clip(video: Path, num_frames: int, cut: int, train: Path, test: Path) -> None:
    """train.mp4 = frames [0, cut) with their audio; test.wav = the audio of frames [cut, T).
    Kept when present (written atomically, so present means complete)."""
    audio = read_audio(video, AUDIO_RATE, num_samples=num_frames * SAMPLES_PER_FRAME)
    if not train.exists() and trim_video(video, train, stop=cut) != cut:
        raise RuntimeError(f"{train}: wrote fewer frames than {cut}")
    if not test.exists():
        with atomic_path(test) as tmp:
            scipy.io.wavfile.write(tmp, AUDIO_RATE, audio[cut * SAMPLES_PER_FRAME :].astype(np.float32))


def full_reconstruction(
    video: Path,
    work: Path,
    recon_cache: Path | None,
    face_model,
    track: FaceTrack,
    device: torch.device,
    progress: bool,
) -> Reconstruction:
    """The whole clip's reconstruction: from the cache folder if there, else fitted (and kept)."""
    cached = recon_cache / f"{video.stem}.coeffs.npz" if recon_cache else None
    if cached is None or not cached.exists():
        cached = work / "full.coeffs.npz"
        if not cached.exists():
            log.info("%s: reconstructing the whole clip", video.stem)
            recon, _ = reconstruct_clip(video, face_model, track=track, device=device, progress=progress)
            recon.save(cached)
    recon = Reconstruction.load(cached)
    if (recon.face_model, recon.num_vertices) != (face_model.name, face_model.num_vertices):
        raise ValueError(
            f"{cached}: face model {recon.face_model} ({recon.num_vertices} vertices), "
            f"expected {face_model.name} ({face_model.num_vertices})"
        )
    log.info("%s: whole-clip reconstruction %s", video.stem, cached)
    return recon


# ------------------------------------------------------------------------------------ one clip


def evaluate_clip(video: Path, args: argparse.Namespace, face_model, device: torch.device) -> dict:
    stem, work = video.stem, args.work / video.stem
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    real_track = cached_track(video, work / "full.track.npz", args.progress)
    num_frames = real_track.num_frames
    cut = int(round(args.fraction * num_frames))
    train, test = work / "train.mp4", work / "test.wav"
    cut_clip(video, num_frames, cut, train, test)
    test_frames = num_frames - cut
    log.info("%s: %d frames, train 0..%d, test %d..%d", stem, num_frames, cut - 1, cut, num_frames - 1)

    # Real references and baselines.
    real_open = landmark_aperture(real_track.ibug68)
    real_test_open, train_open = real_open[cut:], real_open[:cut]
    recon = full_reconstruction(video, work, args.recon_cache, face_model, real_track, device, args.progress)
    if recon.num_frames != num_frames:
        log.warning("%s: reconstruction has %d frames, the track %d", stem, recon.num_frames, num_frames)
    full_deg = recon.angles_degrees()
    real_deg, train_deg = full_deg[cut:num_frames], full_deg[:cut]
    n = min(len(real_test_open), len(train_open))
    row = {
        "clip": stem,
        "frames": num_frames,
        "train_frames": cut,
        "test_frames": test_frames,
        "baseline_mouth_r_replay": pearson(train_open[:n], real_test_open[:n]),
        **pose_baselines(real_deg, train_deg),
    }

    # Personalize (resumable), as a fresh process would.
    bundle = personalize(train, work / "actor", PersonalizeConfig(face_model=args.face_model), device, args.progress)
    row["personalize_s"] = float(sum(stage["seconds"] for stage in bundle.manifest["stages"].values()))
    actor = Actor.load(work / "actor")
    actor_deg = actor.recon.angles_degrees()
    m = min(len(actor_deg), len(train_deg))
    row["angle_offset"] = {
        name: float(np.abs(actor_deg[:m, i] - train_deg[:m, i]).mean()) for i, name in enumerate(ANGLE_NAMES)
    }

    # Generate and measure each pose mode.
    row["modes"] = {}
    for mode in args.modes:
        config = GenerateConfig(pose_mode=mode)
        output = work / f"{mode}.mp4"
        result = generate(actor, test, output, config, device, args.progress)
        gen_track = track_video(output, TrackConfig(), progress=args.progress)
        gen_open = landmark_aperture(gen_track.ibug68)
        k = min(len(gen_open), len(real_test_open))
        pose = pose_similarity(real_deg, np.degrees(result.angles.astype(np.float64)))
        row["modes"][mode] = {
            "rendered_mode": result.pose_mode,
            "num_frames": result.num_frames,
            "tracked_frames": gen_track.num_frames,
            "generate_s": result.seconds,
            "gen_fps": result.num_frames / result.seconds,
            "seam": result.seam_visibility,
            "mouth_r": pearson(gen_open[:k], real_test_open[:k]),
            "detected": float(gen_track.detected.mean()),
            **pose,
        }
        r = row["modes"][mode]
        log.info(
            "%s %s: mouth r %.2f (replay %.2f), HS %.3f (static %.3f, replay %.3f), seam %.2f, %.1f frames/s",
            stem,
            mode,
            r["mouth_r"],
            row["baseline_mouth_r_replay"],
            r["hs"],
            row["static_hs"],
            row["replay_hs"],
            r["seam"],
            r["gen_fps"],
        )
    row["seconds"] = time.perf_counter() - start
    return row


# ------------------------------------------------------------------------------------ report


def mean_of(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def summary(rows: list[dict], modes: list[str]) -> dict:
    ok = [r for r in rows if "error" not in r]
    keys = ["mouth_r", "hs", *(f"w1_{a}" for a in ANGLE_NAMES), "seam", "gen_fps"]
    out: dict = {"clips": len(ok), "failed": [r["clip"] for r in rows if "error" in r], "modes": {}}
    for mode in modes:
        out["modes"][mode] = {key: mean_of(r["modes"][mode][key] for r in ok if mode in r["modes"]) for key in keys}
    out["baselines"] = {
        "mouth_r_replay": mean_of(r["baseline_mouth_r_replay"] for r in ok),
        **{f"static_{k}": mean_of(r[f"static_{k}"] for r in ok) for k in ["hs", *(f"w1_{a}" for a in ANGLE_NAMES)]},
        **{f"replay_{k}": mean_of(r[f"replay_{k}"] for r in ok) for k in ["hs", *(f"w1_{a}" for a in ANGLE_NAMES)]},
        "personalize_s": mean_of(r["personalize_s"] for r in ok),
    }
    return out


def w1(r: dict, prefix: str = "") -> str:
    return " ".join(f"{r[f'{prefix}w1_{a}']:4.1f}" for a in ANGLE_NAMES)


def mode_table(rows: list[dict], mode: str, mean: dict) -> str:
    lines = [
        f"### pose mode {mode}",
        "",
        "| clip | mouth r | HS | W1 pitch yaw roll, deg | seam | gen fps |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['clip']} | failed: {row['error']} | | | | |")
            continue
        r = row["modes"][mode]
        lines.append(
            f"| {row['clip']} | {r['mouth_r']:.2f} | {r['hs']:.3f} | {w1(r)} | {r['seam']:.2f} | {r['gen_fps']:.1f} |"
        )
    lines.append(
        f"| **mean** | {mean['mouth_r']:.2f} | {mean['hs']:.3f} | {w1(mean)} | {mean['seam']:.2f} "
        f"| {mean['gen_fps']:.1f} |"
    )
    return "\n".join(lines)


def baseline_table(rows: list[dict], mean: dict) -> str:
    lines = [
        "### per clip and baselines",
        "",
        "| clip | frames train/test | personalize s | mouth r replay | HS static | HS replay | W1 static | W1 replay |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['clip']} | failed: {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['clip']} | {r['train_frames']}/{r['test_frames']} | {r['personalize_s']:.0f} "
            f"| {r['baseline_mouth_r_replay']:.2f} | {r['static_hs']:.3f} | {r['replay_hs']:.3f} "
            f"| {w1(r, 'static_')} | {w1(r, 'replay_')} |"
        )
    lines.append(
        f"| **mean** | | {mean['personalize_s']:.0f} | {mean['mouth_r_replay']:.2f} | {mean['static_hs']:.3f} "
        f"| {mean['replay_hs']:.3f} | {w1(mean, 'static_')} | {w1(mean, 'replay_')} |"
    )
    return "\n".join(lines)


def summary_table(means: dict) -> str:
    lines = [
        "### means",
        "",
        "| | mouth r | HS | W1 pitch yaw roll, deg | seam | gen fps |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in means["modes"].items():
        lines.append(
            f"| {mode} | {m['mouth_r']:.2f} | {m['hs']:.3f} | {w1(m)} | {m['seam']:.2f} | {m['gen_fps']:.1f} |"
        )
    b = means["baselines"]
    lines.append(f"| baseline: static head (train mean) | | {b['static_hs']:.3f} | {w1(b, 'static_')} | | |")
    lines.append(
        f"| baseline: train replay | {b['mouth_r_replay']:.2f} | {b['replay_hs']:.3f} | {w1(b, 'replay_')} | | |"
    )
    return "\n".join(lines)


def report(rows: list[dict], means: dict) -> str:
    parts = [summary_table(means), baseline_table(rows, means["baselines"])]
    parts += [mode_table(rows, mode, m) for mode, m in means["modes"].items()]
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of test clips")
    parser.add_argument("--only", nargs="*", help="clip stems to evaluate")
    parser.add_argument("--work", type=Path, default=Path("/tmp/eval_generate"), help="working folder (WORK/<stem>/)")
    parser.add_argument("--face-model", default="default")
    parser.add_argument("--recon-cache", type=Path, help="folder of whole-clip reconstructions (<stem>.coeffs.npz)")
    parser.add_argument("--modes", nargs="+", default=list(POSE_MODES), choices=POSE_MODES)
    parser.add_argument("--fraction", type=float, default=0.7, help="head of each clip used for personalize")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--progress", action="store_true", help="show the library's progress bars")
    parser.add_argument("--json", type=Path, help="write everything here")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    face_model = load_face_model(args.face_model)
    videos = [v for v in corpus_videos(args.clips) if not args.only or v.stem in args.only]
    if args.only and len(videos) != len(set(args.only)):
        missing = sorted(set(args.only) - {v.stem for v in videos})
        parser.error(f"no clip named {', '.join(missing)} in {args.clips}")
    start = time.perf_counter()
    rows = []
    for i, video in enumerate(videos, 1):
        log.info("[%d/%d] %s", i, len(videos), video.stem)
        try:
            rows.append(evaluate_clip(video, args, face_model, device))
        except Exception as err:  # one broken clip should not lose the others' results
            log.exception("%s failed", video.stem)
            rows.append({"clip": video.stem, "error": f"{type(err).__name__}: {err}"})
    seconds = time.perf_counter() - start
    means = summary(rows, args.modes)
    print(report(rows, means))
    print(
        f"\n{means['clips']} clips in {seconds / 60:.1f} min"
        + (f"; failed: {', '.join(means['failed'])}" if means["failed"] else "")
    )
    if args.json:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(
            json.dumps({"config": config, "seconds": seconds, "summary": means, "clips": rows}, indent=1)
        )
    return 1 if means["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
