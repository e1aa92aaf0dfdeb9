"""The liveliness benchmark: blinks and eye openness, and head motion, of generated videos.

Eyes (default): every shared clip as a video actor and the photo actors `EYE_PHOTOS` (the
astronaut, stills of clips at 224-512 px, a painting; `eval_articulation.PHOTOS`) each say the
same real recorded speech (the two shared radio clips, 16 s); the output is re-tracked by
mediapipe frame by frame (unsmoothed lids) and scored with `audio2pose.blinks.eye_scores`: blinks
a minute, median blink duration, the longest half-closed eye (over 400 ms: held, not a blink) and
jumps of the eye opening. Beside each video actor: its own footage's scores over the whole clip.
`--blinks off` gives the eyes as the background frames have them (no blinks drawn).

Head (`--head`): each clip's actor learns from its first 60% (`eval_articulation --real`'s
bundles, WORK/<face model>/real/<name>) and says the last 40%'s real speech; the planned head
poses (`personalize.generate.plan_speech`, no video) against the reconstructed real tail: HS,
raw W1 per angle and velocity W1 per angle, beside a still head at the training mean and the
training poses replayed, and the planned poses at a fixed amplitude (`--amplitudes`).

    python scripts/eval_alive.py --work out/articulation --json eyes.json [--blinks off]
    python scripts/eval_alive.py --work out/articulation --head --json head.json

Actors are personalized into WORK/<face model>/... where missing (`eval_articulation`'s bundles
are reused).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from eval_articulation import add_actor_arguments, made_actor, still

from audio2pose.blinks import BlinkConfig, eye_openness, eye_scores, find_blinks
from audio2pose.features import load_speech
from audio2pose.metrics import ANGLE_NAMES, pose_baselines, pose_similarity, velocity_w1
from personalize.bundle import Actor
from personalize.evaluate import EvaluateConfig, heldout_video
from personalize.generate import GenerateConfig, generate, plan_speech
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.landmarks import mesh_to_ibug68
from recon3d.reconstruct import reconstruct_clip
from recon3d.track import TrackConfig, track_video
from recon3d.video import AUDIO_RATE, VIDEO_FPS, probe

SPEECH = ("radio34_8s.wav", "radio40_8s.wav")
EYE_PHOTOS = ("astronaut", "hdtf_katie@512", "vox_00010@224", "retalk_2@400", "retalk_3 painting")


def scores(mesh_raw: np.ndarray) -> dict[str, float]:
    openness = eye_openness(mesh_to_ibug68(mesh_raw))
    measured = {key: round(value, 1) for key, value in eye_scores(openness, VIDEO_FPS).items()}
    return {"blinks": len(find_blinks(openness)), **measured}


def eyes(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    audio = np.concatenate([load_speech(args.data / "audio" / name, None)[0] for name in SPEECH])
    config = GenerateConfig(eyes=BlinkConfig(blinks=args.blinks))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        speech = Path(tmp) / "speech.wav"
        soundfile.write(speech, audio, AUDIO_RATE)
        for name in [*args.videos, *args.photos]:
            bundle = work / name.replace(" ", "_")
            source = args.clips / f"{name}.mp4" if name in args.videos else still(name, args.clips, work)
            actor = Actor.load(bundle, args.face_model) if bundle.is_dir() else made_actor(source, bundle, args)[0]
            output = work / f"{name.replace(' ', '_')}.eyes-{args.blinks}.mp4"
            generate(actor, speech, output, config, args.device, progress=False)  # never a stale one
            track = track_video(output, TrackConfig(crop_size=actor.recon.crop.size), progress=False)
            row = {"actor": name, "photo": actor.is_photo, **scores(track.mesh_raw)}
            if not actor.is_photo:
                row |= {f"own_{key}": value for key, value in scores(actor.track().mesh_raw).items()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    own = [r for r in rows if not r["photo"] and r["own_blinks"] >= 3]
    summary = {
        "actors": len(rows),
        "rate_6_40": sum(6 <= r["blink_rate"] <= 40 for r in rows),
        "duration_60_400": sum(60 <= r["blink_ms"] <= 400 for r in rows if np.isfinite(r["blink_ms"])),
        "no_held_half_closed": sum(r["half_closed_ms"] <= 400 for r in rows),
        "own_rate_actors": len(own),
        "own_rate_0.5_2x": sum(0.5 <= r["blink_rate"] / r["own_blink_rate"] <= 2 for r in own),
    }
    return rows, summary


def head(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    real = work / "real"
    real.mkdir(exist_ok=True)
    rows = []
    for name in args.videos:
        video = args.clips / f"{name}.mp4"
        bundle = real / name
        end = round(0.6 * probe(video).duration, 2)
        actor = Actor.load(bundle, args.face_model) if bundle.is_dir() else made_actor(video, bundle, args, end)[0]
        tail, _ = heldout_video(actor, None, None, real, EvaluateConfig())
        cached = real / f"{name}.tail-poses.npy"
        if not cached.exists():
            track = track_video(tail, TrackConfig(crop_size=actor.recon.crop.size), progress=False)
            recon, _ = reconstruct_clip(tail, actor.face_model, FitConfig(), track, device=args.device, progress=False)
            np.save(cached, recon.angles_degrees())
        real_deg, train_deg = np.load(cached), actor.recon.angles_degrees()
        audio, frames = load_speech(tail, None, actor.audio2pose.config.features)
        row = {"clip": name, "frames": len(real_deg)}
        baselines = pose_baselines(real_deg, train_deg, VIDEO_FPS)
        for label, amplitude in (("generated", None), *((f"amplitude {a:g}", a) for a in args.amplitudes)):
            config = GenerateConfig(pose_amplitude=amplitude, articulation="network", brows=False)
            plan, _ = plan_speech(actor, audio, frames, config, args.device)
            generated = np.degrees(plan.angle.astype(np.float64))
            measured = pose_similarity(real_deg, generated) | velocity_w1(real_deg, generated, VIDEO_FPS)
            row[label] = _pose_row(measured)
        for label in ("static", "replay"):
            row[label] = _pose_row(
                {key.removeprefix(f"{label}_"): v for key, v in baselines.items() if key.startswith(label)}
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "clips": len(rows),
        **{
            f"mean_hs_{label}": round(float(np.mean([r[label]["hs"] for r in rows])), 3)
            for label in rows[0]
            if isinstance(rows[0][label], dict)
        },
        "above_static": sum(r["generated"]["hs"] > r["static"]["hs"] for r in rows),
        "above_replay": sum(r["generated"]["hs"] > r["replay"]["hs"] for r in rows),
    }
    for a in args.amplitudes:
        summary[f"above_static_amplitude_{a:g}"] = sum(r[f"amplitude {a:g}"]["hs"] > r["static"]["hs"] for r in rows)
        summary[f"above_replay_amplitude_{a:g}"] = sum(r[f"amplitude {a:g}"]["hs"] > r["replay"]["hs"] for r in rows)
    return rows, summary


def _pose_row(measured: dict) -> dict:
    keys = ["hs", *(f"w1_{a}" for a in ANGLE_NAMES), *(f"velocity_w1_{a}" for a in ANGLE_NAMES)]
    return {key: round(float(measured[key]), 3) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    add_actor_arguments(parser, list(EYE_PHOTOS))
    parser.add_argument("--blinks", default=BlinkConfig.blinks, help="generate's --blinks")
    parser.add_argument("--head", action="store_true", help="head motion on held-out speech instead of the eyes")
    parser.add_argument("--amplitudes", nargs="*", type=float, default=[0.5], help="with --head: fixed amplitudes too")
    args = parser.parse_args()
    args.clips = args.data / "clips"
    if args.videos is None:
        args.videos = sorted(p.stem for p in args.clips.glob("*.mp4"))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    face_model = load_face_model(args.face_model)
    work = args.work / face_model.name
    work.mkdir(parents=True, exist_ok=True)
    rows, summary = head(args, work) if args.head else eyes(args, work)
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"face_model": face_model.name, "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
