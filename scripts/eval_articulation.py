"""Articulation benchmark: do the lips close on p/b/m and open on vowels of speech the actor never said?

Each actor (video clips and photos) says new sentences in several Flite voices; Flite reports the
phones' exact timings. The generated video is re-tracked (`recon3d.track`, mediapipe) frame by
frame, without the temporal smoothing `talkface` applies to its own tracks (its One-Euro filter
takes a 40-80 ms lip closure for jitter: the `smoothed_` columns show what it leaves), and its
inner-lip aperture scored against those phones
(`audio2pose.metrics.articulation_scores`): bilabial closure rate, open/closed contrast, r with
the phones' openness and the lag at which it peaks (+ = the mouth leads the sound). Both ways the
mouth can move are run: `phones` (the default) and `network` (the audio2pose network's own
expression, as before phones drove the mouth).

Held-out real speech (`--heldout`): each clip's actor learns from its first 70% only
(WORK/<face model>/heldout/<name>) and says the last 30%'s real speech in both modes; the output
and the real tail are tracked as `talkface evaluate` tracks (smoothed) and compared: mouth r (of
the inner-lip apertures) and LMD, as in `talkface evaluate`.

Actors are personalized into WORK/<face model>/<name> (resumed when there); outputs stay in WORK.

    python scripts/eval_articulation.py --work out/articulation --json articulation.json
    python scripts/eval_articulation.py --face-model ../shared/data/facemodels/ict-facekit.tar.xz ...
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from audio2pose.metrics import articulation_scores, landmark_aperture, mouth_landmark_distance, pearson
from audio2pose.tts import FliteSynthesizer, synthesize_text
from personalize.bundle import Actor
from personalize.evaluate import EvaluateConfig, heldout_video
from personalize.generate import GenerateConfig, generate
from personalize.pipeline import PersonalizeConfig, personalize
from personalize.samples import sample_photo
from recon3d.facemodels import load_face_model
from recon3d.smoothing import SmoothingConfig
from recon3d.track import TrackConfig, track_video
from recon3d.video import iter_frames, probe

SENTENCES = (
    "Bob bought a map of the old mill by the pond.",
    "Please move the big box up to my cabin, Pam.",
    "A warm bath may help, but a nap is better for a baby.",
    "My father paid for the boat with a pile of paper money.",
)
"""New speech, rich in bilabials and open vowels (none of it said in the clips)."""
VOICES = ("rms", "awb", "slt")
VIDEO_ACTORS = ("hdtf_aoc_8s", "hdtf_katie_8s", "retalk_1", "vox_00015", "vox_741400104")
PHOTO_ACTORS = ("astronaut", "vox_00010")
"""The sample photo, and the first frame of a clip (the clip itself is not used)."""
UNSMOOTHED = SmoothingConfig(min_cutoff=1e4, beta=0.0)
"""A One-Euro cutoff far above the frame rate: each frame's own landmarks."""


def photo_source(name: str, clips: Path, work: Path) -> Path:
    if name == "astronaut":
        return sample_photo()
    path = work / f"{name}.png"
    if not path.exists():
        frame = next(iter_frames(clips / f"{name}.mp4"))
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path


def heldout_scores(video: Path, work: Path, args: argparse.Namespace, mode: str) -> dict:
    end = round(0.7 * probe(video).duration, 2)
    bundle = work / video.stem
    personalize(video, bundle, PersonalizeConfig(face_model=args.face_model, end=end), args.device, progress=False)
    actor = Actor.load(bundle, args.face_model)
    tail, _ = heldout_video(actor, None, None, work, EvaluateConfig())
    output = work / f"{video.stem}.{mode}.mp4"
    if not output.exists():
        generate(actor, tail, output, GenerateConfig(articulation=mode), args.device, progress=False)
    config = TrackConfig(crop_size=actor.recon.crop.size)
    real, made = track_video(tail, config, progress=False).ibug68, track_video(output, config, progress=False).ibug68
    n = min(len(real), len(made))
    row = {
        "clip": video.stem,
        "articulation": mode,
        "heldout_frames": n,
        "mouth_r": round(pearson(landmark_aperture(made[:n]), landmark_aperture(real[:n])), 3),
        "lmd": round(mouth_landmark_distance(real, made), 4),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=Path("../shared/data/clips"))
    parser.add_argument("--work", type=Path, default=Path("out/articulation"))
    parser.add_argument("--face-model", default="builtin")
    parser.add_argument("--videos", nargs="*", default=list(VIDEO_ACTORS))
    parser.add_argument("--photos", nargs="*", default=list(PHOTO_ACTORS))
    parser.add_argument("--voices", nargs="*", default=list(VOICES))
    parser.add_argument("--articulation", nargs="*", default=["phones", "network"])
    parser.add_argument("--network-voices", nargs="*", default=["rms"], help="voices the network mode is run with")
    parser.add_argument("--heldout", nargs="*", default=[], help="clips to measure on their held-out 30%% instead")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    face_model = load_face_model(args.face_model)
    work = args.work / face_model.name
    work.mkdir(parents=True, exist_ok=True)
    if args.heldout:
        rows = [
            heldout_scores(args.clips / f"{name}.mp4", work / "heldout", args, mode)
            for name in args.heldout
            for mode in args.articulation
        ]
        summary = {
            mode: {
                k: round(float(np.mean([r[k] for r in rows if r["articulation"] == mode])), 3)
                for k in ("mouth_r", "lmd")
            }
            for mode in args.articulation
        }
        print(json.dumps(summary, indent=1))
        if args.json:
            args.json.write_text(
                json.dumps({"face_model": face_model.name, "rows": rows, "summary": summary}, indent=1)
            )
        return
    text = " ".join(SENTENCES)
    speech = {voice: synthesize_text(text, FliteSynthesizer(voice)) for voice in args.voices}
    config = PersonalizeConfig(face_model=args.face_model)
    rows = []
    actors = [(name, args.clips / f"{name}.mp4", False) for name in args.videos]
    actors += [(name, photo_source(name, args.clips, args.work), True) for name in args.photos]
    for name, source, photo in actors:
        start = time.perf_counter()
        personalize(source, work / name, config, args.device, progress=False)
        seconds = time.perf_counter() - start
        actor = Actor.load(work / name, args.face_model)
        for mode in args.articulation:
            for voice, said in speech.items():
                if mode == "network" and voice not in args.network_voices:
                    continue
                output = work / f"{name}.{mode}.{voice}.mp4"
                if not output.exists():
                    generate(actor, said, output, GenerateConfig(articulation=mode), args.device, progress=False)
                scores = {}
                for prefix, smoothing in (("", UNSMOOTHED), ("smoothed_", SmoothingConfig())):
                    track = track_video(
                        output, TrackConfig(crop_size=actor.recon.crop.size, smoothing=smoothing), progress=False
                    )
                    scores |= {
                        prefix + k: round(v, 3)
                        for k, v in articulation_scores(landmark_aperture(track.ibug68), said.phones).items()
                    }
                rows.append(
                    {
                        "actor": name,
                        "photo": photo,
                        "articulation": mode,
                        "voice": voice,
                        "personalize_seconds": round(seconds, 1),
                        **scores,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    keys = (
        "closure_rate",
        "contrast",
        "openness_r",
        "openness_lag",
        "smoothed_closure_rate",
        "smoothed_contrast",
        "smoothed_openness_r",
    )
    summary = {}
    for mode in args.articulation:
        for photo in (False, True):
            chosen = [r for r in rows if r["articulation"] == mode and r["photo"] == photo]
            if chosen:
                summary[f"{mode} {'photo' if photo else 'video'}"] = {
                    **{k: round(float(np.nanmean([r[k] for r in chosen])), 3) for k in keys},
                    "min_closure_rate": min(r["closure_rate"] for r in chosen),
                    "max_abs_lag": max(abs(r["openness_lag"]) for r in chosen),
                    "runs": len(chosen),
                }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"face_model": face_model.name, "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
