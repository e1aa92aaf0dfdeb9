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
   rendered, `GenerateResult.angles`), the eyes (blink rate and duration, the longest half-closed
   eye, jumps of the eye opening: `audio2pose.blinks.eye_scores`, of the real and the re-tracked
   generated frames' unsmoothed lids), lip sync (mouth-opening r and LMD of the re-tracked
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

import cv2
import jsonschema
import numpy as np
import torch
from tqdm import tqdm

from audio2pose.blinks import eye_openness, eye_scores
from audio2pose.metrics import (
    landmark_aperture,
    mouth_landmark_distance,
    pearson,
    pose_baselines,
    pose_similarity,
    speaker_embedding,
    velocity_w1,
)
from audio2pose.voice import speak
from personalize import toolkit_version
from personalize.bundle import Actor, file_sha256
from personalize.frames import follow_head
from personalize.generate import GenerateConfig, actor_eyes, check_speech, generate, predicted_backgrounds
from personalize.manifest import ActorEntry
from personalize.report import REPORT_NAME, Measured, figure_class, write_report, write_summary
from recon3d.errors import InputError
from recon3d.fit import FitConfig, model_landmarks
from recon3d.landmarks import mesh_to_ibug68
from recon3d.reconstruct import Reconstruction, reconstruct_clip
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import AUDIO_RATE, VIDEO_FPS, check_output, iter_frames, probe, read_audio, trim_video
from refine.actor import ActorRefiner, face_alpha
from refine.data import face_region
from refine.identity import identity_features, identity_similarity
from refine.metrics import evenly_spaced, face_box, face_metrics, sharpness
from render.composite import blend
from render.face import FaceRenderer
from render.mouth import match_mouths, mouth_landmarks
from render.synthesis import FaceWarper

log = logging.getLogger("talkface")

SCHEMA_VERSION = 3
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
    image_frames: int = 50
    """Held-out frames whose image metrics are measured (evenly spaced; at the video's resolution
    each kind's frames are held in memory)."""
    sample_frames: int = 6
    """Held-out frames shown in the report's strip (real / render / refined / synthesized)."""


# ------------------------------------------------------------------------------------ held-out input


def heldout_video(
    actor: Actor, video: Path | None, start: float | None, work: Path, config: EvaluateConfig
) -> tuple[Path, float | None]:
    """The held-out video to compare with (the given one, or a copy of the source's tail in
    `work`) and the start time used (None for a separate video)."""
    if video is not None and start is not None:
        raise InputError("give the held-out input as --video or as --start, not both")
    if video is not None:
        info = probe(video)
        check_not_trained_on(actor, video)
        _check_heldout(video, info, 0.0, config)
        check_no_trained_frames(actor, video)
        return video, None
    source, settings = actor.bundle.manifest["source"], actor.bundle.manifest["settings"]
    root, end = actor.bundle.root, settings.get("end")
    if actor.is_photo:
        raise InputError(f"{root}: a photo actor has no video to hold out a part of; give --video HELDOUT.mp4")
    if end is None:
        raise InputError(
            f"{root}: the actor learned from all of {source['name']}, so none of it is unseen; give "
            "--video HELDOUT.mp4, or personalize again with --end SECONDS"
        )
    start = end if start is None else start
    if start < end:
        raise InputError(
            f"--start {start:g}: the actor was trained on {source['name']} up to {end:g} s; those "
            f"frames are not held out: give --start {end:g} or later"
        )
    if "path" not in source:
        raise InputError(
            f"{root}: made by a talkface that did not record where {source['name']} is; give --video "
            "with a held-out video"
        )
    path = Path(source["path"])
    if not path.is_file():
        raise InputError(f"{root}: its source video {path} is not there any more; give --video with a held-out video")
    if file_sha256(path) != source["sha256"]:
        raise InputError(f"{path}: changed since the actor was made from it; give --video with a held-out video")
    _check_heldout(path, probe(path), start, config)
    tail = work / f"{path.stem}_from_{start:g}s.mp4"
    trim_video(path, tail, first=round(start * VIDEO_FPS))
    return tail, start


def _trained_on_advice(actor: Actor) -> str:
    """What to do instead of evaluating on the actor's training footage."""
    end = actor.bundle.manifest["settings"].get("end")
    advice = "give --video with footage of the actor that it was not trained on"
    return advice if actor.is_photo or end is None else f"{advice}, or --start {end:g} for its video's unseen tail"


def check_not_trained_on(actor: Actor, video: Path) -> None:
    """Refuses a held-out `video` that is the actor's own training video: the file the bundle
    recorded (the same file, however named), or one with its bytes (its recorded SHA-256)."""
    source = actor.bundle.manifest["source"]
    recorded = Path(source["path"]) if "path" in source else None
    same_file = recorded is not None and recorded.exists() and os.path.samefile(video, recorded)
    if same_file or file_sha256(video) == source["sha256"]:
        raise InputError(
            f"{video}: the video the actor was trained on ({source['name']}), so not held out; "
            + _trained_on_advice(actor)
        )


OVERLAP_FRAMES = 25
"""The held-out video's first frames (1 s) that are looked for among the actor's training frames."""
OVERLAP_MIN_FRAMES = 5
"""Fewest frames that must overlap for frames to count as found."""
OVERLAP_MATCH = 1.5
"""Largest mean absolute difference (grey levels of a 64-pixel-wide thumbnail, brightness and
contrast normalised: `_thumbnails`) of the overlapping frames for them to be the same frames.
Measured on the 20 shared clips, the actor trained on the first 70%: a second of the trained part
re-encoded (x264 crf 23) differs from the bundle's frames by 0.31-1.27 where it was cut from;
the unseen second right after the trained part by 0.76-11.8 from its best-matching trained frames."""
OVERLAP_CONTRAST = 2.0
"""How much better the matching offset must be than any other (more than 2 frames away): the
found frames differ from the rest of the training footage by 2.2-12.5 times as much (the
re-encoded trained part: 1.4 for retalk_1, whose frames barely change, so not found), the unseen
tail's best offset by 1.1-1.7 times as much."""


def _thumbnails(frames) -> np.ndarray:
    """`(T, h, 64)` float32 grey thumbnails of RGB `frames`, each brightness and contrast
    normalised (re-encoding shifts both a little)."""
    thumbs = []
    for frame in frames:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        width = 64
        height = max(1, round(width * grey.shape[0] / grey.shape[1]))
        thumb = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
        thumb -= thumb.mean()
        thumbs.append(40.0 * thumb / max(float(thumb.std()), 1.0))
    return np.stack(thumbs)


def trained_frames_found(actor: Actor, video: Path) -> tuple[int, int] | None:
    """Where the first `OVERLAP_FRAMES` frames of `video` share frames with the actor's training
    frames (the bundle's): `(training frame, held-out frame)` of the first pair, or None. The
    frames are found when, at one offset, at least `OVERLAP_MIN_FRAMES` of them are nearly the same
    (`OVERLAP_MATCH`), and clearly more so than at any other offset (`OVERLAP_CONTRAST`): a still
    scene, where every offset matches about as well, is not taken for the same frames."""
    if actor.is_photo:
        return None
    head = []
    for t, frame in enumerate(iter_frames(video)):
        if t >= OVERLAP_FRAMES:
            break
        head.append(frame)
    if not head:
        return None
    width, height = actor.frame_size
    if abs(head[0].shape[1] / head[0].shape[0] - width / height) > 0.02 * width / height:
        return None  # another framing: not the same frames
    with actor.frames() as frames:
        trained = _thumbnails(frames[t] for t in range(len(frames)))
    held = _thumbnails(head)
    if held.shape[1:] != trained.shape[1:]:
        return None
    n, k, least = len(trained), len(held), min(OVERLAP_MIN_FRAMES, len(held), len(trained))
    offsets = np.arange(least - k, n - least + 1)  # held-out frame i against training frame offset + i
    score = np.empty(len(offsets))
    for m, offset in enumerate(offsets):
        first, last = max(0, -offset), min(k, n - offset)
        score[m] = np.abs(trained[offset + first : offset + last] - held[first:last]).mean()
    best = int(np.argmin(score))
    away = np.abs(offsets - offsets[best]) > 2
    if score[best] > OVERLAP_MATCH or (away.any() and score[away].min() < OVERLAP_CONTRAST * score[best]):
        return None
    offset = int(offsets[best])
    return max(0, offset), max(0, -offset)


def check_no_trained_frames(actor: Actor, video: Path) -> None:
    """Refuses a held-out `video` whose first second holds frames the actor was trained on
    (`trained_frames_found`): a copy, re-encoding or cut of its training video."""
    found = trained_frames_found(actor, video)
    if found is not None:
        trained, held = found
        raise InputError(
            f"{video}: its frames from {held / VIDEO_FPS:.2f} s on are frames the actor was trained on "
            f"({actor.bundle.manifest['source']['name']} from {trained / VIDEO_FPS:.2f} s), so not held out; "
            + _trained_on_advice(actor)
        )


def _check_heldout(path: Path, info, start: float, config: EvaluateConfig) -> None:
    if info.is_image:
        raise InputError(f"{path}: a photo; evaluation compares with a video of the actor speaking")
    if not info.has_audio:
        raise InputError(f"{path}: no audio stream; evaluation needs the actor's speech to generate from")
    seconds = info.duration - start
    if seconds < config.min_seconds:
        raise InputError(
            f"{path}: {max(seconds, 0):.2f} s held out from {start:g} s on; give at least "
            f"{config.min_seconds:g} s of held-out video"
        )
    if seconds > config.max_seconds:
        raise InputError(
            f"{path}: {seconds:.0f} s held out; evaluate takes at most {config.max_seconds:g} s: give a shorter video"
        )


# ------------------------------------------------------------------------------------ measuring


def _identity_reference(actor: Actor, track: FaceTrack, count: int) -> np.ndarray:
    """`(N, 128)` dlib features of up to `count` of the actor's training frames (tracked in
    `track`), evenly spaced."""
    chosen = evenly_spaced(track.num_frames, count)
    with actor.frames() as frames:
        crops = np.stack([track.crop.crop(frames[int(t)]) for t in chosen])
    return identity_features(crops, track.crop.frame_to_crop(track.ibug68[chosen]))


SAME_PERSON = 0.93
"""Lowest identity similarity (`refine.identity`: held-out frames to the actor's training frames,
as `identity_real`) taken for the same person. On the 20 shared clips (18 people; 25 frames of the
second half of each clip against the mean of 25 of another's first half, in its 128 or 256 pixel
crop as `_identity_reference` takes them), different people score 0.75-0.906 (vox_681100216
against vox_00010 the most alike), the same person 0.954-0.988 in another recording (vox_00002
and vox_517600055, hdtf_aoc_8s and retalk_3) and 0.970-0.995 later in the same clip."""


def _identity_to(video: Path, track: FaceTrack, reference: np.ndarray, count: int) -> float:
    """The mean identity similarity to `reference` of up to `count` frames of `video`, evenly spaced."""
    chosen = evenly_spaced(track.num_frames, count)
    wanted = set(chosen.tolist())
    frames = [frame for t, frame in enumerate(iter_frames(video)) if t in wanted]
    features = identity_features(np.stack(frames), track.ibug68[chosen[: len(frames)]])
    return float(identity_similarity(features, reference).mean())


def _warn_other_person(actor: Actor, heldout: Path, track: FaceTrack, reference: np.ndarray, count: int) -> None:
    """Warns when the held-out footage does not seem to show the actor (`SAME_PERSON`): every
    metric would compare the actor with someone else."""
    similarity = _identity_to(heldout, track, reference, count)
    if similarity < SAME_PERSON:
        log.warning(
            "%s: the face in it does not look like the actor's (identity similarity %.3f; the same person "
            "scores above %.2f), so the metrics compare the actor with someone else: give held-out footage of "
            "the person in %s",
            heldout,
            similarity,
            SAME_PERSON,
            actor.bundle.manifest["source"]["name"],
        )


def _video_scores(video: Path, track: FaceTrack, reference: np.ndarray, count: int) -> dict[str, float]:
    """Over up to `count` frames of `video`, evenly spaced: the mean identity similarity to
    `reference` and the mean sharpness inside the face box, at the video's own resolution."""
    chosen = evenly_spaced(track.num_frames, count)
    wanted = set(chosen.tolist())
    frames = [frame for t, frame in enumerate(iter_frames(video)) if t in wanted]
    points = track.ibug68[chosen[: len(frames)]]
    size = frames[0].shape[1::-1]
    features = identity_features(np.stack(frames), points)
    return {
        "identity_generated": float(identity_similarity(features, reference).mean()),
        "sharpness_generated": float(
            np.mean([sharpness(frame, face_box(p, size)) for frame, p in zip(frames, points)])
        ),
    }


def heldout_plan(actor: Actor, recon: Reconstruction, config: GenerateConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out frame (reconstructed as `recon`): the actor's frame lending its background
    (as `generate` picks them under a predicted pose) and the one lending its mouth (-1: painted)."""
    trained, target = actor.recon.split("cpu"), recon.split("cpu")
    background = predicted_backgrounds(
        recon.angles_degrees(),
        actor.recon.angles_degrees(),
        target.exp.numpy(),
        trained.exp.numpy(),
        actor.face_model.exp_prior_std,
        config,
        actor_eyes(actor.track(), config.eyes)[0] if config.synthesis == "image" else None,
    )
    mouth = match_mouths(
        mouth_landmarks(actor.face_model, target), mouth_landmarks(actor.face_model, trained), config.mouth
    )
    return background, mouth


def _image_metrics(
    actor: Actor,
    recon: Reconstruction,
    track: FaceTrack,
    heldout: Path,
    reference: np.ndarray,
    config: EvaluateConfig,
    device: torch.device,
) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """Face-box metrics, at the held-out video's own resolution, of the actor's face made from the
    real held-out coefficients as `generate` makes it, each frame from the same training frame
    (`heldout_plan`): synthesized from that frame's pixels (the default, with the mouth interior
    retrieved), and the face model's render (raw) and its refinement, blended into that frame with
    its head moved to the pose (`generate --synthesis render`). Plus the seam
    measure along the face's outline of the synthesized frames and of the real ones. Over
    `config.image_frames` frames, evenly spaced; returns the metrics, face views of the sampled
    frames of each kind, and which frames those are."""
    chosen = evenly_spaced(track.num_frames, config.image_frames)
    trained, target = actor.recon.split("cpu"), recon.split("cpu")
    background, mouth = heldout_plan(actor, recon, config.generate)
    crop = track.crop  # the held-out clip's: its coefficients are fitted in it
    with actor.frames() as frames:
        rendered, coverage, followed = _render_into(actor, recon, frames, background, chosen, config, device)
        made = {"raw": rendered}
        refiner = actor.refiner if config.generate.refine else None
        if refiner:
            region = face_region(crop.frame_to_crop(track.ibug68), crop.size, refiner.refiner.size)
            made["refined"] = ActorRefiner(refiner.refiner, region).to(device).refine_sequence(rendered, coverage)
        warper = FaceWarper(actor.face_model, actor.recon.crop, actor.recon.camera, config.generate.warp, device)
        warps = [
            warp
            for batch in np.array_split(chosen, max(1, len(chosen) // 16))
            for warp in warper.warps(
                target[torch.from_numpy(batch)],
                trained[torch.from_numpy(background[batch])],
                trained[torch.from_numpy(np.maximum(mouth[batch], 0))],
                crop,
            )
        ]
        # Every kind in the same native-resolution view: the held-out crop's region, unresampled.
        x0, y0 = int(np.floor(crop.x0)), int(np.floor(crop.y0))
        side = int(np.ceil(crop.side)) + 1
        wx0, wy0, wx1, wy1 = warper.window
        stacks: dict[str, list[np.ndarray]] = {name: [] for name in ("real", "synthesized", *made)}
        seams: dict[str, list[float]] = {"real": [], "synthesized": []}
        wanted = {int(t): k for k, t in enumerate(chosen)}
        for t, real in enumerate(iter_frames(heldout)):
            if t not in wanted:
                continue
            k = wanted[t]
            lender = frames[int(mouth[t])] if mouth[t] >= 0 else None
            synthesized = warper.compose(frames[int(background[t])], lender, warps[k])
            alpha = face_alpha(coverage[t])
            views = {
                "real": real,
                "synthesized": synthesized,
                **{name: crop.paste(stack[t], followed[k], alpha) for name, stack in made.items()},
            }
            for name, image in views.items():
                stacks[name].append(_view(image, x0, y0, side))
            seams["real"].append(warps[k].seam(real[wy0:wy1, wx0:wx1]))
            seams["synthesized"].append(warps[k].seam(synthesized[wy0:wy1, wx0:wx1]))
    real = np.stack(stacks.pop("real"))
    images = {name: np.stack(stack) for name, stack in stacks.items()}
    landmarks = track.ibug68[chosen[: len(real)]] - (x0, y0)
    metrics = face_metrics(images, real, landmarks, reference, config.identity_frames)
    metrics |= {f"seam_{name}": float(np.nanmean(values)) for name, values in seams.items()}
    shown = evenly_spaced(len(real), config.sample_frames)
    box = face_box(landmarks[shown].reshape(-1, 2), side)
    samples = {
        name: np.stack([_face_view(image, box) for image in stack[shown]])
        for name, stack in {"real": real, **images}.items()
    }
    return metrics, samples, chosen[shown]


def _render_into(
    actor: Actor,
    recon: Reconstruction,
    frames,
    background: np.ndarray,
    chosen: np.ndarray,
    config: EvaluateConfig,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The face model rendered at each held-out frame's coefficients (the actor's albedo, the
    held-out crop) and blended into the crop of its background frame, the head there moved to
    the render's pose, as `generate --synthesis render` does: `(T, S, S, 3)` crops, `(T, S, S)`
    coverage, and the `chosen` frames' moved background frames."""
    renderer = FaceRenderer(actor.face_model, actor.recon.albedo, recon.camera, device)
    crop, trained, target = recon.crop, actor.recon.split("cpu"), recon.split("cpu")
    size = crop.size
    out, coverage = (
        np.empty((recon.num_frames, size, size, 3), np.uint8),
        np.empty((recon.num_frames, size, size), np.float32),
    )
    followed, chosen = [], set(chosen.tolist())
    for index in torch.arange(recon.num_frames).split(config.generate.batch_frames):
        images, covered, landmarks = renderer.render(target[index].to(device))
        with torch.no_grad():
            filmed = (
                model_landmarks(
                    renderer.landmark_model,
                    trained[torch.from_numpy(background[index.numpy()])].to(device),
                    renderer.camera,
                )
                .cpu()
                .numpy()
            )
        # Filmed in the actor's crop, rendered in the held-out clip's.
        filmed = crop.frame_to_crop(actor.recon.crop.crop_to_frame(filmed))
        for k, t in enumerate(index.tolist()):
            frame = follow_head(frames[int(background[t])], crop, filmed[k], landmarks[k])
            out[t] = blend(images[k], crop.crop(frame), covered[k], config.generate.composite)[0]
            coverage[t] = covered[k]
            if t in chosen:
                followed.append(frame)
    return out, coverage, followed


def _view(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The `side` x `side` pixels of `image` from (x0, y0) on, black past its border."""
    view = np.zeros((side, side, 3), np.uint8)
    height, width = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        view[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return view


def _face_view(image: np.ndarray, box: tuple[int, int, int, int], size: int = 192) -> np.ndarray:
    """The face `box` of `image`, scaled to `size` pixels wide for the report's strip."""
    x0, y0, x1, y1 = box
    face = image[y0:y1, x0:x1]
    return cv2.resize(face, (size, round(size * face.shape[0] / max(face.shape[1], 1))), interpolation=cv2.INTER_AREA)


def measure(
    actor: Actor,
    heldout: Path,
    generated: Path,
    text: str | None,
    config: EvaluateConfig,
    device: torch.device,
    progress: bool,
    step: Callable[[str], None],
) -> tuple[Measured, dict]:
    """Generates `generated` from the held-out speech (or `text`) and measures it all; returns the
    measurements and the generation's facts for metrics.json."""
    face_model = actor.face_model.to(device)
    step("track")
    track = track_video(heldout, TrackConfig(crop_size=actor.recon.crop.size), progress=progress)
    train_track = actor.track()
    reference = _identity_reference(actor, train_track, config.identity_frames)
    _warn_other_person(actor, heldout, track, reference, config.identity_frames)
    step("reconstruct")
    recon, _ = reconstruct_clip(heldout, face_model, config.fit, track, device=device, progress=progress)
    real_audio = read_audio(heldout, AUDIO_RATE, num_samples=round(track.num_frames * AUDIO_RATE / VIDEO_FPS))
    check_speech(heldout, real_audio, config.generate)

    step("generate")
    speech = real_audio if text is None else speak(text, actor.voice, progress=progress)
    result = generate(actor, speech, generated, config.generate, device, progress)
    step("re-track")
    try:
        generated_track = track_video(generated, TrackConfig(crop_size=actor.recon.crop.size), progress=progress)
    except InputError as err:
        raise InputError(
            f"the generated video shows no face to measure ({err}); the actor bundle looks broken: "
            "rerun `talkface personalize`"
        ) from None

    step("metrics")
    real_deg, generated_deg = recon.angles_degrees(), np.degrees(result.angles.astype(np.float64))
    train_deg = actor.recon.angles_degrees()
    metrics: dict[str, float | None] = {
        **pose_similarity(real_deg, generated_deg),
        **velocity_w1(real_deg, generated_deg, VIDEO_FPS),
        **pose_baselines(real_deg, train_deg, VIDEO_FPS),
    }
    real_open, generated_open = landmark_aperture(track.ibug68), landmark_aperture(generated_track.ibug68)
    train_landmarks = train_track.ibug68
    if text is None:  # other words cannot be in sync with the real mouth
        n = min(len(real_open), len(generated_open))
        m = min(len(real_open), len(train_landmarks))
        metrics |= {
            "mouth_r": pearson(generated_open[:n], real_open[:n]),
            "replay_mouth_r": pearson(landmark_aperture(train_landmarks[:m]), real_open[:m]),
            "lmd": mouth_landmark_distance(track.ibug68, generated_track.ibug68),
            "replay_lmd": mouth_landmark_distance(track.ibug68, train_landmarks),
        }
    for prefix, tracked in (("", generated_track), ("real_", track)):
        scores = eye_scores(eye_openness(mesh_to_ibug68(tracked.mesh_raw)), VIDEO_FPS)
        metrics |= {f"{prefix}{key}": value for key, value in scores.items()}
    image, samples, chosen = _image_metrics(actor, recon, track, heldout, reference, config, device)
    metrics |= image
    metrics |= _video_scores(generated, generated_track, reference, config.identity_frames)
    metrics["seam_generated"] = result.seam_visibility
    if text is not None:
        actor_speech = speaker_embedding(real_audio)
        unmatched = speak(text, dataclasses.replace(actor.voice, target=None))
        metrics |= {
            "speaker_similarity": float(speaker_embedding(speech.audio) @ actor_speech),
            "speaker_similarity_unmatched": float(speaker_embedding(unmatched.audio) @ actor_speech),
        }
    measured = Measured(
        metrics={key: _finite(metrics.get(key)) for key in metric_keys()},
        real_degrees=real_deg,
        generated_degrees=generated_deg,
        static_degrees=train_deg.mean(0),
        real_aperture=real_open,
        generated_aperture=generated_open,
        samples=samples,
        sample_frames=chosen,
    )
    facts = {
        "frames": result.num_frames,
        "pose_mode": result.pose_mode,
        "seconds": round(result.seconds, 3),
        "face_detected": round(float(generated_track.detected.mean()), 4),
        "synthesis": config.generate.synthesis,
        "refined": config.generate.synthesis == "render" and config.generate.refine and actor.refiner is not None,
    }
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
    figure_class()  # the report's plots can be drawn: say so before the work, not after
    begin = time.perf_counter()
    config, device, report_dir = config or EvaluateConfig(), torch.device(device), Path(report_dir)
    if text is not None and not text.strip():
        raise InputError("--text is empty; give words to say, or leave it out to use the held-out speech")
    check_report_dir(report_dir, [actor_dir, video])
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
                "actor": {
                    "path": str(actor.bundle.root.resolve()),
                    "source": manifest["source"]["name"],
                    "end": manifest["settings"].get("end"),
                    "face_model": actor.face_model.name,
                    "photo": actor.is_photo,
                },
                "heldout": {
                    "video": str(Path(video).resolve()) if video is not None else manifest["source"]["path"],
                    "start": start,
                    "frames": facts["heldout_frames"],
                    "seconds": round(facts["heldout_frames"] / VIDEO_FPS, 3),
                    "text": text,
                },
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
    log.info(
        "evaluated %s in %.1f s: HS %.3f (static %.3f, replay %.3f), mouth r %s; report %s",
        actor.bundle.root,
        record["seconds"],
        record["metrics"]["hs"],
        record["metrics"]["static_hs"],
        record["metrics"]["replay_hs"],
        record["metrics"]["mouth_r"],
        report_dir / REPORT_NAME,
    )
    return record


def check_report_dir(report_dir: Path, inputs: list) -> None:
    """Refuses a report folder that cannot be written, or whose contents the finished report would
    replace (`_replace_dir`) when they are not an earlier report: a folder of other files (the
    actor bundle, the held-out video's folder, a home folder) would be lost."""
    check_output(report_dir, inputs=inputs, folder=True)
    if report_dir.is_dir() and any(report_dir.iterdir()) and not (report_dir / METRICS_NAME).is_file():
        raise InputError(
            f"{report_dir}: not empty and not a talkface report; the report replaces the folder's contents, "
            "so give a new or empty folder (or an earlier report's)"
        )


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
    check_output(report_dir, inputs=[actors], folder=True)
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
