"""`talkface evaluate`: an actor's generated video measured against real footage it never saw.

Held-out input: a separate video of the actor (`video`), or the tail of the actor's own source
video from `start` seconds (default: the `end` it was personalized with; anything earlier was
trained on). Then:

1. the held-out frames are tracked and reconstructed with the actor's face model: their real
   head poses, landmarks and coefficients;
2. the actor says the held-out speech (or `text`, in its matched voice) into REPORT/generated.mp4
   (`personalize.generate.generate`), and that video is tracked again;
3. metrics (../shared/DESIGN.md "Metrics", `metric_keys()`): head pose (HS, W1, velocity W1 with
   the static-head and replayed-training baselines; the generated poses are the ones `generate`
   rendered, `GenerateResult.angles`), lip sync (mouth-opening r and LMD of the re-tracked
   generated video against the real frames, with the replayed-training baseline; not with text,
   which says other words), image quality (the actor's face rendered from the real held-out
   coefficients with the actor's albedo, raw and refined, against the real frames inside the face
   box, in the face region at the refiner's size), dlib identity similarity to the actor's training
   frames, and with text the speaker similarity of the said speech to the real held-out speech;
4. REPORT/metrics.json (validated against `metrics.schema.json`) and REPORT/report.html
   (`personalize.report`).

The report is written into a temporary folder beside REPORT and renamed into place at the end:
REPORT either is a complete report or is left as it was.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import torch
from tqdm import tqdm

from audio2pose.metrics import (
    landmark_aperture, mouth_landmark_distance, pearson, pose_baselines, pose_similarity,
    speaker_embedding, velocity_w1,
)
from audio2pose.voice import speak
from personalize.bundle import file_sha256, toolkit_version
from personalize.generate import GenerateConfig, check_speech, generate
from personalize.manifest import ActorEntry
from personalize.pipeline import Actor
from personalize.report import REPORT_NAME, Measured, write_report, write_summary
from recon3d.errors import InputError
from recon3d.fit import FitConfig
from recon3d.reconstruct import reconstruct_clip
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import AUDIO_RATE, VIDEO_FPS, iter_frames, probe, read_audio, trim_video
from refine.actor import ACTOR_REFINE, ActorRefiner
from refine.data import face_region, render_clip
from refine.identity import identity_features, identity_similarity
from refine.metrics import evenly_spaced, face_metrics

log = logging.getLogger("talkface")

SCHEMA_VERSION = 1
METRICS_NAME = "metrics.json"
GENERATED_NAME = "generated.mp4"
STEPS = ("held-out", "track", "reconstruct", "generate", "re-track", "metrics", "report")
"""An evaluation's steps, timed in metrics.json's `timings`."""


@functools.cache
def metrics_schema() -> dict:
    """The JSON Schema of metrics.json (`personalize/metrics.schema.json`, shipped in the package)."""
    return json.loads(resources.files("personalize").joinpath("metrics.schema.json").read_text())


def metric_keys() -> list[str]:
    """Every metric of metrics.json's `metrics` object, in the schema's order."""
    return list(metrics_schema()["properties"]["metrics"]["properties"])


@dataclass
class EvaluateConfig:
    """Settings of an evaluation."""

    fit: FitConfig = field(default_factory=FitConfig)
    """Reconstruction of the held-out frames (their real coefficients and head poses)."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """How the actor says the held-out speech (default pose mode, refined when it can be)."""
    face_model: str | None = None
    """Where the bundle's face model is now (None: where it was when the bundle was made)."""
    min_seconds: float = 1.0
    """Shortest held-out part accepted: fewer frames say little about a distribution of poses."""
    max_seconds: float = 120.0
    """Longest held-out part accepted (its crops are held in memory)."""
    identity_frames: int = 25
    """Frames whose dlib identity feature is measured (evenly spaced), of each kind: the actor's
    training frames (their mean is the actor's identity), and the real, rendered, refined and
    generated held-out frames (dlib's network takes about 0.1 s a face on a CPU)."""
    sample_frames: int = 6
    """Held-out frames shown in the report's strip (real / render / refined)."""


# ------------------------------------------------------------------------------------ held-out input


def heldout_video(actor: Actor, video: Path | None, start: float | None, work: Path,
                  config: EvaluateConfig) -> tuple[Path, float | None]:
    """The held-out video to compare with (the given one, or a copy of the source's tail in
    `work`) and the start time used (None for a separate video)."""
    if video is not None and start is not None:
        raise InputError("give the held-out input as --video or as --start, not both")
    if video is not None:
        _check_heldout(video, probe(video), 0.0, config)
        return video, None
    source, settings = actor.bundle.manifest["source"], actor.bundle.manifest["settings"]
    root, end = actor.bundle.root, settings.get("end")
    if actor.is_photo:
        raise InputError(f"{root}: a photo actor has no video to hold out a part of; give --video HELDOUT.mp4")
    if end is None:
        raise InputError(f"{root}: the actor learned from all of {source['name']}, so none of it is unseen; give "
                         "--video HELDOUT.mp4, or personalize again with --end SECONDS")
    start = end if start is None else start
    if start < end:
        raise InputError(f"--start {start:g}: the actor was trained on {source['name']} up to {end:g} s; those "
                         f"frames are not held out: give --start {end:g} or later")
    if "path" not in source:
        raise InputError(f"{root}: made by a talkface that did not record where {source['name']} is; give --video "
                         "with a held-out video")
    path = Path(source["path"])
    if not path.is_file():
        raise InputError(f"{root}: its source video {path} is not there any more; give --video with a held-out video")
    if file_sha256(path) != source["sha256"]:
        raise InputError(f"{path}: changed since the actor was made from it; give --video with a held-out video")
    _check_heldout(path, probe(path), start, config)
    tail = work / f"{path.stem}_from_{start:g}s.mp4"
    trim_video(path, tail, first=round(start * VIDEO_FPS))
    return tail, start


def _check_heldout(path: Path, info, start: float, config: EvaluateConfig) -> None:
    if info.is_image:
        raise InputError(f"{path}: a photo; evaluation compares with a video of the actor speaking")
    if not info.has_audio:
        raise InputError(f"{path}: no audio stream; evaluation needs the actor's speech to generate from")
    seconds = info.duration - start
    if seconds < config.min_seconds:
        raise InputError(f"{path}: {max(seconds, 0):.2f} s held out from {start:g} s on; give at least "
                         f"{config.min_seconds:g} s of held-out video")
    if seconds > config.max_seconds:
        raise InputError(f"{path}: {seconds:.0f} s held out; evaluate takes at most {config.max_seconds:g} s: "
                         "give a shorter video")


# ------------------------------------------------------------------------------------ measuring


def _identity_reference(actor: Actor, track: FaceTrack, count: int) -> np.ndarray:
    """`(N, 128)` dlib features of up to `count` of the actor's training frames (tracked in
    `track`), evenly spaced."""
    chosen = evenly_spaced(track.num_frames, count)
    with actor.frames() as frames:
        crops = np.stack([track.crop.crop(frames[int(t)]) for t in chosen])
    return identity_features(crops, track.crop.frame_to_crop(track.ibug68[chosen]))


def _video_identity(video: Path, track: FaceTrack, reference: np.ndarray, count: int) -> float:
    """Mean identity similarity to `reference` of up to `count` frames of `video`, evenly spaced."""
    chosen = evenly_spaced(track.num_frames, count)
    wanted = set(chosen.tolist())
    crops = [track.crop.crop(frame) for t, frame in enumerate(iter_frames(video)) if t in wanted]
    points = track.crop.frame_to_crop(track.ibug68[chosen[:len(crops)]])
    return float(identity_similarity(identity_features(np.stack(crops), points), reference).mean())


def _image_metrics(actor: Actor, recon, crops: np.ndarray, track: FaceTrack, reference: np.ndarray,
                   config: EvaluateConfig, device: torch.device) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """Face-region metrics of the actor's face rendered from the real held-out coefficients, raw
    and refined; the face regions of the sampled frames of each, and which frames those are."""
    landmarks = track.crop.frame_to_crop(track.ibug68)
    refiner = actor.refiner if config.generate.refine else None
    size = refiner.refiner.size if refiner else ACTOR_REFINE.network.size
    # The region of these frames' crop, found as personalize finds the actor's.
    region = face_region(landmarks, crops.shape[1], size)
    # The actor's albedo (what generate renders) under the held-out frames' own geometry and light.
    driven = dataclasses.replace(recon, albedo=actor.recon.albedo)
    rendered, coverage = render_clip(driven, actor.face_model, crops, device=device)
    stacks = {"raw": rendered}
    if refiner:
        stacks["refined"] = ActorRefiner(refiner.refiner, region).to(device).refine_sequence(rendered, coverage)
    regions = {name: np.stack([region.crop(image) for image in stack]) for name, stack in stacks.items()}
    real = np.stack([region.crop(image) for image in crops])
    metrics = face_metrics(regions, real, region.frame_to_crop(landmarks), reference, config.identity_frames)
    chosen = evenly_spaced(len(real), config.sample_frames)
    samples = {"real": real[chosen], **{name: stack[chosen] for name, stack in regions.items()}}
    return metrics, samples, chosen


def measure(actor: Actor, heldout: Path, generated: Path, text: str | None, config: EvaluateConfig,
            device: torch.device, progress: bool, step: Callable[[str], None]) -> tuple[Measured, dict]:
    """Generates `generated` from the held-out speech (or `text`) and measures it all; returns the
    measurements and the generation's facts for metrics.json."""
    face_model = actor.face_model.to(device)
    step("track")
    track = track_video(heldout, TrackConfig(crop_size=actor.recon.crop.size), progress=progress)
    step("reconstruct")
    recon, crops = reconstruct_clip(heldout, face_model, config.fit, track, device=device, progress=progress)
    real_audio = read_audio(heldout, AUDIO_RATE, num_samples=round(track.num_frames * AUDIO_RATE / VIDEO_FPS))
    check_speech(heldout, real_audio, config.generate)

    step("generate")
    speech = real_audio if text is None else speak(text, actor.voice, progress=progress)
    result = generate(actor, speech, generated, config.generate, device, progress)
    step("re-track")
    try:
        generated_track = track_video(generated, TrackConfig(crop_size=actor.recon.crop.size), progress=progress)
    except InputError as err:
        raise InputError(f"the generated video shows no face to measure ({err}); the actor bundle looks broken: "
                         "rerun `talkface personalize`") from None

    step("metrics")
    real_deg, generated_deg = recon.angles_degrees(), np.degrees(result.angles.astype(np.float64))
    train_deg = actor.recon.angles_degrees()
    metrics: dict[str, float | None] = {
        **pose_similarity(real_deg, generated_deg), **velocity_w1(real_deg, generated_deg, VIDEO_FPS),
        **pose_baselines(real_deg, train_deg, VIDEO_FPS),
    }
    real_open, generated_open = landmark_aperture(track.ibug68), landmark_aperture(generated_track.ibug68)
    train_track = FaceTrack.load(actor.bundle.path("track.npz"))
    train_landmarks = train_track.ibug68
    if text is None:  # other words cannot be in sync with the real mouth
        n = min(len(real_open), len(generated_open))
        m = min(len(real_open), len(train_landmarks))
        metrics |= {"mouth_r": pearson(generated_open[:n], real_open[:n]),
                    "replay_mouth_r": pearson(landmark_aperture(train_landmarks[:m]), real_open[:m]),
                    "lmd": mouth_landmark_distance(track.ibug68, generated_track.ibug68),
                    "replay_lmd": mouth_landmark_distance(track.ibug68, train_landmarks)}
    reference = _identity_reference(actor, train_track, config.identity_frames)
    image, samples, chosen = _image_metrics(actor, recon, crops, track, reference, config, device)
    metrics |= image
    metrics["identity_generated"] = _video_identity(generated, generated_track, reference, config.identity_frames)
    if text is not None:
        actor_speech = speaker_embedding(real_audio)
        unmatched = speak(text, dataclasses.replace(actor.voice, target=None))
        metrics |= {"speaker_similarity": float(speaker_embedding(speech) @ actor_speech),
                    "speaker_similarity_unmatched": float(speaker_embedding(unmatched) @ actor_speech)}
    measured = Measured(
        metrics={key: _finite(metrics.get(key)) for key in metric_keys()},
        real_degrees=real_deg, generated_degrees=generated_deg, static_degrees=train_deg.mean(0),
        real_aperture=real_open, generated_aperture=generated_open, samples=samples, sample_frames=chosen)
    facts = {"frames": result.num_frames, "pose_mode": result.pose_mode, "seconds": round(result.seconds, 3),
             "face_detected": round(float(generated_track.detected.mean()), 4), "refined": "refined" in samples}
    return measured, {"heldout_frames": track.num_frames, "generated": facts}


def _finite(value) -> float | None:
    """JSON has no NaN: a metric that cannot be measured is null."""
    return None if value is None or not np.isfinite(value) else round(float(value), 5)


# ------------------------------------------------------------------------------------ one actor


def evaluate(
    actor_dir: str | os.PathLike,
    report_dir: str | os.PathLike,
    video: str | os.PathLike | None = None,
    start: float | None = None,
    text: str | None = None,
    config: EvaluateConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Evaluates the actor at `actor_dir` on held-out footage into `report_dir`; returns the
    contents of its metrics.json. See the module docstring."""
    begin = time.perf_counter()
    config, device, report_dir = config or EvaluateConfig(), torch.device(device), Path(report_dir)
    if text is not None and not text.strip():
        raise InputError("--text is empty; give words to say, or leave it out to use the held-out speech")
    actor = Actor.load(actor_dir, config.face_model)
    with tempfile.TemporaryDirectory(prefix="talkface-heldout-") as work:
        heldout, start = heldout_video(actor, None if video is None else Path(video), start, Path(work), config)
        timings: dict[str, float] = {}
        bar = tqdm(total=len(STEPS), desc="evaluate", unit="step", disable=not progress)
        current = [begin, STEPS[0]]

        def step(name: str) -> None:
            """Ends the current step (its seconds into `timings`) and starts `name`."""
            now = time.perf_counter()
            timings[current[1]] = round(now - current[0], 3)
            current[:] = [now, name]
            bar.set_postfix_str(name)
            bar.update()

        staging = report_dir.parent / f".{report_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir(parents=True)
        try:
            measured, facts = measure(actor, heldout, staging / GENERATED_NAME, text, config, device, progress, step)
            step("report")
            manifest = actor.bundle.manifest
            record = {
                "schema_version": SCHEMA_VERSION,
                "toolkit_version": toolkit_version(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "actor": {"path": str(actor.bundle.root.resolve()), "source": manifest["source"]["name"],
                          "end": manifest["settings"].get("end"), "face_model": actor.face_model.name,
                          "photo": actor.is_photo},
                "heldout": {"video": str(Path(video).resolve()) if video is not None else manifest["source"]["path"],
                            "start": start, "frames": facts["heldout_frames"],
                            "seconds": round(facts["heldout_frames"] / VIDEO_FPS, 3), "text": text},
                "generated": {"video": GENERATED_NAME, **facts["generated"]},
                "metrics": measured.metrics,
                "timings": timings,
                "seconds": 0.0,
            }
            write_report(staging, record, measured)
            step("done")
            record["seconds"] = round(time.perf_counter() - begin, 3)
            jsonschema.validate(record, metrics_schema())
            (staging / METRICS_NAME).write_text(json.dumps(record, indent=1) + "\n")
            _replace_dir(staging, report_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            bar.close()
    log.info("evaluated %s in %.1f s: HS %.3f (static %.3f, replay %.3f), mouth r %s; report %s",
             actor.bundle.root, record["seconds"], record["metrics"]["hs"], record["metrics"]["static_hs"],
             record["metrics"]["replay_hs"], record["metrics"]["mouth_r"], report_dir / REPORT_NAME)
    return record


def _replace_dir(staging: Path, target: Path) -> None:
    """Renames the finished `staging` folder to `target`, replacing an earlier report there."""
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def read_report(report_dir: str | os.PathLike) -> dict | None:
    """The metrics of a complete report at `report_dir` (its metrics.json valid, its HTML there),
    else None."""
    path = Path(report_dir) / METRICS_NAME
    try:
        record = json.loads(path.read_text())
        jsonschema.validate(record, metrics_schema())
    except (OSError, ValueError, jsonschema.ValidationError):
        return None
    return record if (Path(report_dir) / REPORT_NAME).is_file() else None


# ------------------------------------------------------------------------------------ many actors


def evaluate_batch(
    entries: list[ActorEntry],
    actors: str | os.PathLike,
    report_dir: str | os.PathLike,
    text: str | None = None,
    config: EvaluateConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Evaluates each manifest entry's actor ACTORS/<name> (on its `heldout` video, else the tail
    of its source after its `end`) into REPORT/<name>/, skipping those whose report is complete;
    an actor that fails is recorded with its error and the others go on. Writes the aggregate
    REPORT/summary.json, .md and .html (`personalize.report.write_summary`); returns the summary."""
    actors, report_dir = Path(actors), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for entry in tqdm(entries, desc="actors", unit="actor", disable=not progress):
        out = report_dir / entry.name
        row = {"name": entry.name, "report": f"{entry.name}/{REPORT_NAME}"}
        record = read_report(out)
        if record is not None:
            log.info("%s: report complete, skipped", entry.name)
        else:
            try:
                record = evaluate(actors / entry.name, out, entry.heldout, None, text, config, device, progress)
            except InputError as err:
                row["error"] = str(err)
            except Exception as err:  # one actor's failure must not lose the others' reports
                log.exception("%s: evaluation failed", entry.name)
                row["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
            if "error" in row:
                log.warning("%s: %s", entry.name, row["error"])
        if record is not None:
            row |= {"seconds": record["seconds"], "metrics": record["metrics"]}
        rows.append(row)
    return write_summary(report_dir, rows)
