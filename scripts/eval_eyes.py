"""The eyes benchmark: blinks and eye openness of generated videos, measured by mediapipe.

Every shared clip as a video actor and the photo actors of `eval_articulation.PHOTOS` (the
astronaut, stills at 224-512 px, a painting) each say the same real recorded speech (the two
shared radio clips, 16 s); the output is re-tracked by mediapipe frame by frame (unsmoothed lids)
and scored with `audio2pose.blinks.eye_scores`: blinks a minute, median blink duration, the
longest half-closed eye (over 400 ms: held, not a blink) and jumps of the eye opening. Beside
each video actor: its own footage's scores over the whole clip (the rate to be within 0.5-2x of).
`--blinks off` gives the eyes as the background frames have them (before this model).

    python scripts/eval_eyes.py --work out/articulation --json eyes.json [--blinks off]

Actors are personalized into WORK/<face model>/<name> where missing (`eval_articulation`'s
bundles are reused).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from eval_articulation import made_actor, still

from audio2pose.blinks import BlinkConfig, eye_openness, eye_scores, find_blinks
from audio2pose.features import load_speech
from personalize.bundle import Actor
from personalize.generate import GenerateConfig, generate
from recon3d.facemodels import load_face_model
from recon3d.landmarks import mesh_to_ibug68
from recon3d.track import TrackConfig, track_video
from recon3d.video import AUDIO_RATE, VIDEO_FPS

SPEECH = ("radio34_8s.wav", "radio40_8s.wav")
EYE_PHOTOS = ("astronaut", "hdtf_katie@512", "vox_00010@224", "retalk_2@400", "retalk_3 painting")


def scores(mesh_raw: np.ndarray) -> dict[str, float]:
    openness = eye_openness(mesh_to_ibug68(mesh_raw))
    measured = {key: round(value, 1) for key, value in eye_scores(openness, VIDEO_FPS).items()}
    return {"blinks": len(find_blinks(openness)), **measured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("out/articulation"))
    parser.add_argument("--face-model", default="builtin")
    parser.add_argument("--videos", nargs="*", help="clips (default: all)")
    parser.add_argument("--photos", nargs="*", default=list(EYE_PHOTOS))
    parser.add_argument("--blinks", default=BlinkConfig.blinks, help="generate's --blinks")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    clips = args.data / "clips"
    args.clips = clips
    videos = args.videos if args.videos is not None else sorted(p.stem for p in clips.glob("*.mp4"))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    face_model = load_face_model(args.face_model)
    work = args.work / face_model.name
    work.mkdir(parents=True, exist_ok=True)
    audio = np.concatenate([load_speech(args.data / "audio" / name, None)[0] for name in SPEECH])
    config = GenerateConfig(eyes=BlinkConfig(blinks=args.blinks))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        speech = Path(tmp) / "speech.wav"
        soundfile.write(speech, audio, AUDIO_RATE)
        for name in [*videos, *args.photos]:
            bundle = work / name.replace(" ", "_")
            source = clips / f"{name}.mp4" if name in videos else still(name, clips, work)
            actor = Actor.load(bundle, args.face_model) if bundle.is_dir() else made_actor(source, bundle, args)[0]
            output = work / f"{name.replace(' ', '_')}.eyes-{args.blinks}.mp4"
            if not output.exists():
                generate(actor, speech, output, config, args.device, progress=False)
            track = track_video(output, TrackConfig(crop_size=actor.recon.crop.size), progress=False)
            row = {"actor": name, "photo": actor.is_photo, **scores(track.mesh_raw)}
            if not actor.is_photo:
                row |= {f"own_{key}": value for key, value in scores(actor.track().mesh_raw).items()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    blinking = [r for r in rows if 6 <= r["blink_rate"] <= 40]
    summary = {
        "actors": len(rows),
        "rate_6_40": len(blinking),
        "duration_60_400": sum(60 <= r["blink_ms"] <= 400 for r in rows if np.isfinite(r["blink_ms"])),
        "no_held_half_closed": sum(r["half_closed_ms"] <= 400 for r in rows),
        "own_rate_actors": sum(not r["photo"] and r["own_blinks"] >= 3 for r in rows),
        "own_rate_0.5_2x": sum(
            0.5 <= r["blink_rate"] / r["own_blink_rate"] <= 2 for r in rows if not r["photo"] and r["own_blinks"] >= 3
        ),
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"face_model": face_model.name, "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
