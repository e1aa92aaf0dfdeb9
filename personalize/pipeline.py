"""`talkface personalize`: the per-actor job, stage by stage, into an actor bundle.

Stages, each a function of the ones before it (`STAGES`, in order):

| stage | writes | what |
|---|---|---|
| ingest | frames.zip | the video at 25 fps as JPEGs: the background frames `generate` pastes into |
| track | track.npz | dense landmarks and the stable crop (`recon3d.track`) |
| reconstruct | fit.npz | per-frame coefficients and the fit's smooth albedo (`recon3d.reconstruct.fit_clip`) |
| albedo | coeffs.npz | the detailed albedo (Yi et al.), re-measured: the actor's face and the backgrounds' poses |
| audio2pose | audio2pose.pt | the actor's audio -> expression + head pose network |
| voice | voice.npz | the actor's voice for text input (`audio2pose.voice`): a Flite voice and its match |
| refine | refine.pt | the actor's memory-augmented GAN (`refine`), fine-tuned on the clip's renders and frames |
| articulation | mouth.npz | the actor's mouth per viseme (`audio2pose.articulation`), from their aligned speech |

A video actor's network is trained on its own speech and reconstruction (from scratch: on the 20
shared clips that beat fine-tuning the general model, see docs/benchmarks.md). A photo is a one-shot actor:
one frame, no speech, so its network is the corpus-trained general model
(`audio2pose.general`) with the photo's own expression and pose as the mean. Its voice is learned
from `voice_sample` when one is given, else text is said in the default Flite voice unmatched.

Each stage's fingerprint covers its settings and the fingerprint of the stage before it, so
changing a setting reruns that stage and everything after it, and nothing before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from audio2pose.articulation import (
    ArticulationConfig,
    MouthShapes,
    corpus_prior_path,
    face_model_prior,
    footage_shapes,
    open_widely,
    settle_closure,
    shrink,
    table_prior,
)
from audio2pose.features import MIN_SPEECH_RMS, speech_rms
from audio2pose.general import general_model_path, load_general_model
from audio2pose.metrics import landmark_aperture, mouth_aperture
from audio2pose.model import AudioToPose, target_statistics
from audio2pose.phones import speech_phones
from audio2pose.train import FinetuneConfig, finetune, motion_clip, reconstruction_targets
from audio2pose.tts import FliteSynthesizer
from audio2pose.voice import VoiceConfig, learn_voice
from personalize.bundle import (
    AUDIO2POSE,
    COEFFS,
    FIT,
    FRAMES,
    LOG_NAME,
    MANIFEST_NAME,
    MOUTH,
    REFINE_WORK,
    REFINER,
    STAGE_FILES,
    STAGES,
    TRACK,
    VOICE,
    ActorBundle,
    bundle_files,
    file_sha256,
    fingerprint,
    frame_name,
    remove_bundle_files,
    toolkit_version,
)
from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.landmarks import EYE_OUTER_CORNERS_IBUG, MOUTH_CORNERS_IBUG, OUTER_LIPS_IBUG
from recon3d.reconstruct import Reconstruction, fit_clip, load_crops, refine_albedo
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import (
    AUDIO_RATE,
    VIDEO_FPS,
    MediaInfo,
    atomic_path,
    held_lock,
    iter_frames,
    probe,
    read_audio,
    remove_stale_temps,
    trim_video,
)
from refine.actor import ACTOR_REFINE, ActorRefiner, general_refiner
from refine.data import clip_pairs, face_region
from refine.train import CHECKPOINT_NAME, RefineTrainConfig, refinement_psnr, train_refiner

log = logging.getLogger("talkface")

LOCK_NAME = ".personalize.lock"
"""Held in the bundle while a personalize writes it (a second one is refused); removed after."""
MIN_CROP_SIZE = 32
SOUND_WINDOW = 0.5
"""Seconds per window of a soundtrack in which sound is looked for (`sound_coverage`)."""
SOUND_RANGE_DB = 40.0
"""A window holds sound within this many dB of the soundtrack's loud windows (its 90th percentile
RMS). On the 20 shared clips the quietest half-second, a pause, is 47 dB below (hdtf_aoc_8s),
every other within 30 dB."""
MIN_SOUND_COVERAGE = 0.5
"""Least share of a video's windows with sound that passes without a warning: the 20 shared clips
have sound in 94-100% of theirs."""
MOUTH_DETAIL = 0.2
"""Least detail in the mouth's area for it to be seen: the spread of grey levels inside the lips'
box over that inside the box of the eye and mouth corners, median of `MOUTH_FRAMES` frames. The
20 shared clips: 0.71-1.21; a rectangle painted over the mouth in every frame (skin-coloured or
black on 8 of them, grey on one): 0.000-0.019."""
MOUTH_MOTION = 0.02
"""Least spread (5th to 95th percentile) of the tracked inner-lip opening, in eye-corner distances
(`audio2pose.metrics.landmark_aperture`), for the mouth to be seen moving: the 20 shared clips
0.049-0.27 (down to 0.0046 in their stillest 2 s, a pause); under a painted rectangle the tracker
guesses a mouth, 0.002-0.046."""
MOUTH_FRAMES = 25
"""Frames, evenly spaced, whose mouth's detail is measured (`MOUTH_DETAIL`)."""


@dataclass
class PersonalizeConfig:
    """Settings of the per-actor job (recorded in the bundle's manifest)."""

    face_model: str = "default"
    """Face model: 'default' (ICT-FaceKit if installed, see docs/design.md, else the built-in one), 'ict',
    'builtin', a FaceXModel folder, a BFM_model_front.mat or a converted .npz
    (`recon3d.facemodels.load_face_model`)."""
    crop_size: int = 256
    """Side of the face crop that is fitted and rendered, pixels."""
    fit: FitConfig = field(default_factory=FitConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    min_seconds: float = 2.0
    """Shortest video accepted: the talking style is learned from at least this much speech."""
    min_speech_rms: float = MIN_SPEECH_RMS
    """Quietest soundtrack accepted (RMS of [-1, 1] samples, about -60 dBFS): below it is silence."""
    frame_quality: int = 95
    """JPEG quality of the stored background frames."""
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    voice_sample: str | None = None
    """A recording of the actor's speech to learn the voice from instead of the video's soundtrack
    (the only way a photo actor gets a matched voice)."""
    refine: RefineTrainConfig = field(default_factory=lambda: dataclasses.replace(ACTOR_REFINE, steps=0))
    """Fine-tuning of the refinement GAN (the CPU preset, `ACTOR_REFINE`, is 1000 steps; `talkface
    personalize` raises the size to 256 on a GPU); 0 steps, the default: no refinement. Only
    `generate --synthesis render` uses a refiner: on the default image synthesis it blurs the
    face (docs/design.md, image-based synthesis)."""
    refine_init: str | None = None
    """A general refiner (`talkface pretrain refine`) to fine-tune from; default: from scratch."""
    articulation: ArticulationConfig = field(default_factory=ArticulationConfig)
    """How the actor's mouth shapes are learned from their aligned footage (how phones then drive
    them is `personalize.generate.GenerateConfig.visemes`)."""
    end: float | None = None
    """Learn from the video up to this time only (seconds); the rest stays unseen, for `talkface
    evaluate --start`. None: the whole video."""

    def __post_init__(self) -> None:
        # Nonsense values are refused here, in one line naming the option (`personalize.options.apply_options`),
        # not deep inside a stage.
        if self.crop_size < MIN_CROP_SIZE:
            raise ValueError(f"the face crop is at least {MIN_CROP_SIZE} pixels")
        for what, steps in (
            ("landmark fit steps", self.fit.landmark_steps),
            ("photometric fit steps", self.fit.photometric_steps),
            ("audio2pose training steps", self.finetune.scratch.steps),
            ("refinement steps", self.refine.steps),
        ):
            if steps < 0:
                raise ValueError(f"{what} cannot be negative")
        if not 0 <= self.frame_quality <= 100:
            raise ValueError("JPEG quality is 0 to 100")


@dataclass(frozen=True)
class StageContext:
    """What every stage gets."""

    video: Path
    info: MediaInfo
    bundle: ActorBundle
    face_model: FaceModel
    config: PersonalizeConfig
    device: torch.device
    progress: bool
    face_track: FaceTrack | None = None
    """The face tracked before anything was written (None where the bundle's track stage was done then)."""


# ------------------------------------------------------------------------------------ stages


def ingest(ctx: StageContext) -> dict:
    """frames.zip: every frame at 25 fps as a JPEG named by its index (random access for the
    background matching, without holding the clip in memory)."""
    count = 0
    frames = tqdm(
        iter_frames(ctx.video),
        total=ctx.info.num_frames(),
        desc="ingest",
        unit="frame",
        disable=not ctx.progress,
        leave=False,
    )
    with atomic_path(ctx.bundle.path(FRAMES)) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for count, frame in enumerate(frames, 1):
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, ctx.config.frame_quality]
            )
            archive.writestr(frame_name(count - 1), data.tobytes())
    return {
        "frames": count,
        "width": ctx.info.width,
        "height": ctx.info.height,
        "seconds": round(count / 25.0, 3),
        "photo": ctx.info.is_image,
    }


def track(ctx: StageContext) -> dict:
    face_track = ctx.face_track or track_face(ctx.video, ctx.config, ctx.progress)
    face_track.save(ctx.bundle.path(TRACK))
    if not ctx.info.is_image:
        _warn_unseen_mouth(ctx, face_track)
    return {
        "frames": face_track.num_frames,
        "detected": round(float(face_track.detected.mean()), 4),
        "confidence": round(float(face_track.confidence.mean()), 4),
    }


def reconstruct(ctx: StageContext) -> dict:
    face_track = FaceTrack.load(ctx.bundle.path(TRACK))
    recon, _ = fit_clip(ctx.video, ctx.face_model, ctx.config.fit, face_track, ctx.device, progress=ctx.progress)
    recon.save(ctx.bundle.path(FIT))
    return _fit_metrics(recon)


def albedo(ctx: StageContext) -> dict:
    face_track = FaceTrack.load(ctx.bundle.path(TRACK))
    recon = Reconstruction.load(ctx.bundle.path(FIT))
    crops = load_crops(ctx.video, face_track, ctx.progress)
    recon = refine_albedo(recon, ctx.face_model, crops, face_track, ctx.device, ctx.config.fit.batch_frames)
    recon.save(ctx.bundle.path(COEFFS))
    return _fit_metrics(recon)


def audio2pose(ctx: StageContext) -> dict:
    recon = Reconstruction.load(ctx.bundle.path(COEFFS))
    if ctx.info.is_image:
        model = photo_model(load_general_model(ctx.face_model.name), recon)
        metrics = {"model": "general", "steps": 0}
    else:
        _warn_partial_sound(ctx)
        torch.manual_seed(ctx.config.finetune.scratch.seed)
        clip = motion_clip(ctx.video, recon, ctx.config.finetune.model.features)
        model = finetune(clip, None, ctx.config.finetune, ctx.device, ctx.progress)
        metrics = {"model": "actor", "steps": ctx.config.finetune.scratch.steps}
    model.cpu().save(ctx.bundle.path(AUDIO2POSE), ctx.face_model.name)
    return metrics


def voice(ctx: StageContext) -> dict:
    source = ctx.config.voice_sample or (None if ctx.info.is_image else ctx.video)
    speech = None if source is None or not ctx.config.voice.match else read_audio(source, AUDIO_RATE)
    model, candidates = learn_voice(speech, ctx.config.voice, ctx.progress)
    model.save(ctx.bundle.path(VOICE))
    if model.target is None:
        log.info("voice: no speech to learn from, text will be said in flite's %s voice as it is", model.base_voice)
        return {"base_voice": model.base_voice, "matched": False}
    for c in candidates:
        log.info(
            "voice candidate %s spread %.1f: speaker similarity %.3f%s",
            c.voice,
            c.spread,
            c.similarity,
            "" if c.word_error_rate is None else f", passage word error rate {c.word_error_rate:.2f}",
        )
    chosen = next(c for c in candidates if (c.voice, c.spread) == (model.base_voice, model.spread))
    return {
        "base_voice": model.base_voice,
        "spread": model.spread,
        "matched": True,
        "similarity": round(chosen.similarity, 4),
        "word_error_rate": round(chosen.word_error_rate, 4),
        "f0_hz": round(model.target.f0_hz, 1),
        "voiced_seconds": round(model.target.voiced_seconds, 2),
    }


def refine(ctx: StageContext) -> dict:
    path = ctx.bundle.path(REFINER)
    path.unlink(missing_ok=True)  # a refiner of earlier settings must not outlive them
    if ctx.info.is_image or ctx.config.refine.steps == 0:
        log.info("refine: %s, frames are not refined", "a photo actor" if ctx.info.is_image else "0 steps")
        return {"refined": False}
    face_track = FaceTrack.load(ctx.bundle.path(TRACK))
    recon = Reconstruction.load(ctx.bundle.path(COEFFS))
    crops = load_crops(ctx.video, face_track, ctx.progress)
    landmarks = face_track.crop.frame_to_crop(face_track.ibug68)
    region = face_region(landmarks, ctx.config.crop_size, ctx.config.refine.network.size)
    pairs = clip_pairs(recon, ctx.face_model, crops, landmarks, region, device=ctx.device)
    work = ctx.bundle.root / REFINE_WORK
    init = None if ctx.config.refine_init is None else general_refiner(ctx.config.refine_init, ctx.config.refine)
    refiner, history = train_refiner(pairs, work, ctx.config.refine, init, device=ctx.device, progress=ctx.progress)
    raw, refined = refinement_psnr(refiner, pairs)
    ActorRefiner(refiner.cpu(), region).save(path)
    (work / CHECKPOINT_NAME).unlink(missing_ok=True)  # the optimizers' state is twice the networks'
    last = history[-1]
    log.info(
        "refine: training frames' face-crop PSNR %.2f dB raw render, %.2f dB refined; sample grids in %s",
        raw,
        refined,
        work / "samples",
    )
    return {
        "refined": True,
        "size": region.size,
        "steps": last["step"],
        "l1": round(last["l1"], 5),
        "mask": round(last["mask"], 4),
        "train_psnr_raw": round(raw, 3),
        "train_psnr": round(refined, 3),
    }


def articulation(ctx: StageContext) -> dict:
    recon = Reconstruction.load(ctx.bundle.path(COEFFS))
    coeffs = recon.split("cpu")
    prior = face_model_prior(ctx.face_model)
    config = ctx.config.articulation
    if ctx.info.is_image:
        if prior is None:
            raise InputError(
                f"no mouth prior for face model {ctx.face_model.name!r} at "
                f"{corpus_prior_path(ctx.face_model.name)}; a photo actor needs one: run "
                "`scripts/train_general_audio2pose.py --face-model SPEC --corpus DIR`"
            )
        own = MouthShapes(prior.closed, prior.open, prior.details, 0.0, np.zeros_like(prior.counts))  # all prior
        source = "none (a photo)"
    else:
        audio = read_audio(ctx.video, AUDIO_RATE, round(recon.num_frames * AUDIO_RATE / VIDEO_FPS))
        timings = speech_phones(audio)
        aperture = mouth_aperture(ctx.face_model, coeffs.id[0], coeffs.exp)
        own = footage_shapes(coeffs.exp.numpy(), aperture, timings, VIDEO_FPS, config)
        source = timings.source
    rest = coeffs.exp.numpy().mean(0)
    shapes = open_widely(shrink(own, prior, config), prior, ctx.face_model, coeffs.id[0], rest, config)
    shapes = settle_closure(shapes, ctx.face_model, coeffs.id[0], rest)
    shapes.save(ctx.bundle.path(MOUTH))
    log.info(
        "articulation: mouth shapes from %s phones%s",
        source,
        "" if prior is None else ", shrunk to the face model's prior",
    )
    return {
        "phones": source,
        "prior": prior is not None,
        "extreme_frames": own.extreme_count,
        "viseme_frames": round(float(own.counts.sum()), 1),
    }


STAGE_RUNNERS: dict[str, Callable[[StageContext], dict]] = {
    "ingest": ingest,
    "track": track,
    "reconstruct": reconstruct,
    "albedo": albedo,
    "audio2pose": audio2pose,
    "voice": voice,
    "refine": refine,
    "articulation": articulation,
}
"""Stage name -> the function that runs it (in `personalize.bundle.STAGES` order; the files it
may write are `personalize.bundle.STAGE_FILES`)."""
assert tuple(STAGE_RUNNERS) == STAGES


def _spread(grey: np.ndarray, points: np.ndarray) -> float:
    """The standard deviation of `grey`'s pixels in the box around `(N, 2)` `points`."""
    (x0, y0), (x1, y1) = np.floor(points.min(0)).astype(int).clip(0), np.ceil(points.max(0)).astype(int)
    return float(grey[y0 : y1 + 1, x0 : x1 + 1].std()) if x1 > x0 and y1 > y0 else 0.0


def mouth_detail(frames: zipfile.ZipFile, face_track: FaceTrack) -> float:
    """`MOUTH_DETAIL`'s measure on `MOUTH_FRAMES` of the bundle's `frames`, evenly spaced."""
    details, count = [], min(face_track.num_frames, len(frames.namelist()))
    for t in np.unique(np.linspace(0, count - 1, MOUTH_FRAMES).round().astype(int)):
        grey = cv2.imdecode(np.frombuffer(frames.read(frame_name(int(t))), np.uint8), cv2.IMREAD_GRAYSCALE)
        points = face_track.ibug68[t]
        details.append(
            _spread(grey, points[OUTER_LIPS_IBUG])
            / max(_spread(grey, points[[*EYE_OUTER_CORNERS_IBUG, *MOUTH_CORNERS_IBUG]]), 1.0)
        )
    return float(np.median(details))


def _warn_unseen_mouth(ctx: StageContext, face_track: FaceTrack) -> None:
    """Warns when the mouth cannot be learned from the video: its area shows no detail
    (`MOUTH_DETAIL`: covered), or the lips never part (`MOUTH_MOTION`)."""
    aperture = landmark_aperture(face_track.ibug68)
    motion = float(np.percentile(aperture, 95) - np.percentile(aperture, 5))
    with zipfile.ZipFile(ctx.bundle.path(FRAMES)) as frames:
        detail = mouth_detail(frames, face_track)
    if detail < MOUTH_DETAIL:
        reason = (
            f"its area shows next to no detail ({detail:.2f} of the face's, a seen mouth's {MOUTH_DETAIL:g} or "
            "more), as if covered"
        )
    elif motion < MOUTH_MOTION:
        reason = (
            f"the lips hardly part (the inner-lip opening varies by {motion:.3f} eye-corner distances, a speaking "
            f"mouth's by {MOUTH_MOTION:g} or more)"
        )
    else:
        return
    log.warning(
        "%s: the actor's mouth cannot be learned from this video: %s; give a video where the mouth is seen while "
        "the actor speaks",
        ctx.bundle.manifest["source"]["name"],
        reason,
    )


def sound_coverage(audio: np.ndarray, floor: float) -> float:
    """The share of `audio`'s `SOUND_WINDOW` windows that hold sound: an RMS within
    `SOUND_RANGE_DB` of its loud windows' and at least `floor`."""
    hop = round(SOUND_WINDOW * AUDIO_RATE)
    count = max(1, round(len(audio) / hop))
    windows = np.pad(audio[: count * hop], (0, max(0, count * hop - len(audio)))).reshape(count, hop)
    rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
    loud = float(np.percentile(rms, 90))
    return float(np.mean(rms >= max(floor, loud * 10 ** (-SOUND_RANGE_DB / 20))))


def _warn_partial_sound(ctx: StageContext) -> None:
    """Warns when sound covers less than `MIN_SOUND_COVERAGE` of the video (a short audio stream,
    silence): the frames under silence teach a face that does not speak."""
    stream = read_audio(ctx.video, AUDIO_RATE)
    seconds, samples = ctx.info.duration, round(ctx.info.duration * AUDIO_RATE)
    # Where the stream ends before the video, the rest is silence (as `read_audio` pads it).
    coverage = sound_coverage(np.pad(stream[:samples], (0, max(0, samples - len(stream)))), ctx.config.min_speech_rms)
    if coverage < MIN_SOUND_COVERAGE:
        log.warning(
            "%s: sound in only %.0f%% of the video (%.1f of %.1f s; its audio stream lasts %.1f s): the actor's "
            "talking style, mouth and voice are learned from its speech, the silent rest teaches a face that "
            "does not speak; give a video of the actor speaking throughout (or --end where the speech ends)",
            ctx.bundle.manifest["source"]["name"],
            100 * coverage,
            coverage * seconds,
            seconds,
            len(stream) / AUDIO_RATE,
        )


def photo_model(general: AudioToPose, recon: Reconstruction) -> AudioToPose:
    """The general model styled for a one-shot actor: the photo's expression and pose as the
    mean, the corpus's spread (one frame has none of its own)."""
    targets = torch.from_numpy(reconstruction_targets(recon))
    mean, _ = target_statistics(targets, general.exp_dim)
    general.set_style(mean, general.target_std.clone())
    return general


def track_face(video: Path, config: PersonalizeConfig, progress: bool) -> FaceTrack:
    return track_video(video, TrackConfig(crop_size=config.crop_size), progress=progress)


def _fit_metrics(recon: Reconstruction) -> dict:
    return {"landmark_error": round(float(recon.landmark_error.mean()), 5), "psnr": round(float(recon.psnr.mean()), 3)}


# ------------------------------------------------------------------------------------ runner


def stage_settings(config: PersonalizeConfig, face_model: FaceModel, info: MediaInfo) -> dict[str, dict]:
    """What each stage's result depends on besides the stage before it."""
    return {
        # `end` only when set, so bundles made before it existed keep their fingerprints.
        "ingest": {
            "min_seconds": config.min_seconds,
            "frame_quality": config.frame_quality,
            **({} if config.end is None else {"end": config.end}),
        },
        "track": {"crop_size": config.crop_size},
        "reconstruct": {"face_model": face_model.name, "vertices": face_model.num_vertices, "fit": asdict(config.fit)},
        "albedo": {},
        "audio2pose": (
            {"general": file_sha256(general_model_path(face_model.name))}
            if info.is_image
            else {"finetune": asdict(config.finetune)}
        ),
        "voice": {
            # `match` only when off, so bundles made before it existed keep their fingerprints.
            "voice": {k: v for k, v in asdict(config.voice).items() if k != "match" or not v},
            "sample": file_sha256(config.voice_sample) if config.voice_sample else None,
        },
        "refine": {
            "refine": asdict(config.refine),
            "init": file_sha256(config.refine_init) if config.refine_init else None,
        },
        "articulation": {"articulation": asdict(config.articulation), "prior": _prior_fingerprint(face_model)},
    }


def _prior_fingerprint(face_model: FaceModel) -> str | None:
    path = corpus_prior_path(face_model.name)
    return file_sha256(path) if table_prior(face_model) is None and path.is_file() else None


def check_source(video: Path, info: MediaInfo, config: PersonalizeConfig) -> None:
    """One-line errors for inputs a personalization cannot use, before anything is written."""
    if config.voice_sample:
        _check_speech(Path(config.voice_sample), probe(config.voice_sample), config, "voice sample")
    if info.is_image:
        if config.end is not None:
            raise InputError(f"{video}: --end cuts a video; a photo has no time to cut at")
        return
    if info.duration < config.min_seconds:
        raise InputError(
            f"{video}: video too short ({info.duration:.1f} s); personalize needs at least "
            f"{config.min_seconds:g} s of the actor speaking (or give a photo for a one-shot actor)"
        )
    _check_speech(video, info, config, "video")
    if config.end is not None:
        if config.end > info.duration:
            raise InputError(
                f"--end {config.end:g}: past the end of {video} ({info.duration:.2f} s); give a time inside the video"
            )
        if config.end < config.min_seconds:
            raise InputError(
                f"--end {config.end:g}: leaves {max(config.end, 0):g} s of {video} to learn from; "
                f"personalize needs at least {config.min_seconds:g} s"
            )


def _check_speech(path: Path, info: MediaInfo, config: PersonalizeConfig, what: str) -> None:
    if not info.has_audio:
        raise InputError(
            f"{path}: no audio stream; personalize learns the actor's talking style and voice from their "
            f"speech: give a {what} with sound" + (" (or a photo for a one-shot actor)" if what == "video" else "")
        )
    audio = read_audio(path, AUDIO_RATE)
    rms = speech_rms(audio)
    if rms < config.min_speech_rms:
        raise InputError(f"{path}: the soundtrack is silent (RMS {rms:.1e}); give a {what} of the actor speaking")


@contextlib.contextmanager
def bundle_log(root: Path) -> Iterator[None]:
    """Appends the job's log records to ACTOR/personalize.log while it runs."""
    handler = logging.FileHandler(root / LOG_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    level = log.level
    # The file gets INFO whatever the console shows (console handlers keep their own levels).
    log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


def check_actor(actor: Path) -> None:
    """A one-line error for an --actor that cannot be a bundle directory (before the video is read)."""
    if actor.exists() and not actor.is_dir():
        raise InputError(f"--actor {actor}: a file, not a directory; give a directory for the actor bundle")
    folder = next(folder for folder in (actor, *actor.absolute().parents) if folder.exists())
    problem = (
        "not a directory" if not folder.is_dir() else None if os.access(folder, os.W_OK | os.X_OK) else "read-only"
    )
    if problem:
        raise InputError(f"--actor {actor}: cannot write there ({folder} is {problem}); give a directory you can write")


@contextlib.contextmanager
def writing_bundle(root: Path) -> Iterator[None]:
    """Makes the bundle directory `root` if need be and holds ROOT/.personalize.lock while the block
    writes the bundle: a second personalize into it is refused (the two would write the same files),
    and the temporary files a killed one left are removed. When the block is refused (InputError)
    and the bundle was new, what it wrote goes again, with the directories made for it: a refusal
    leaves nothing behind."""
    made = [folder for folder in (root, *root.parents) if not folder.exists()]
    with held_lock(
        root / LOCK_NAME,
        busy=f"--actor {root}: another `talkface personalize` is writing this bundle; wait for it to finish",
        cannot_write=f"--actor {root}: cannot write the bundle",
    ):
        new = not (root / MANIFEST_NAME).exists()  # known only under the lock: the other run may be making it
        for file in (*bundle_files(root), root / REFINE_WORK / CHECKPOINT_NAME):
            remove_stale_temps(file, 0.0)  # none is live: this run holds the bundle
        try:
            yield
        except InputError:
            if new:
                remove_bundle_files(root)
                (root / LOCK_NAME).unlink()
                for folder in made:  # deepest first
                    with contextlib.suppress(OSError):  # holds something else: kept
                        folder.rmdir()
            raise


def personalize(
    video: str | os.PathLike,
    actor: str | os.PathLike,
    config: PersonalizeConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
) -> ActorBundle:
    """Runs the stages that are not done yet for `video` into the bundle at `actor`; returns it.

    Finished stages whose inputs are unchanged are skipped (a killed job resumes where it
    stopped); the manifest is updated after each stage. The bundle of another video is refused
    unless `overwrite`, which replaces whatever bundle is there. The video is checked (its
    soundtrack, a face in every part of it) before anything is written; a refusal leaves a new
    bundle's directory as it was before (absent) and an existing bundle untouched.
    """
    video, actor, config, device = Path(video), Path(actor), config or PersonalizeConfig(), torch.device(device)
    info = probe(video)
    check_source(video, info, config)
    check_actor(actor)
    with contextlib.ExitStack() as stack:
        if config.end is not None:
            # Every stage reads the video: they get a copy of its first `end` seconds (made again
            # on a rerun; the stages' fingerprints hold the source's hash and `end`, not the copy's).
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="talkface-trim-")))
            source, video = video, work / f"{video.stem}.mp4"
            trim_video(source, video, stop=round(config.end * VIDEO_FPS))
            info = probe(video)
        else:
            source = video
        return _personalize(source, video, info, actor, config, device, progress, overwrite)


def _personalize(
    source: Path,
    video: Path,
    info: MediaInfo,
    actor: Path,
    config: PersonalizeConfig,
    device: torch.device,
    progress: bool,
    overwrite: bool,
) -> ActorBundle:
    """`personalize` from `video` (the `source` video, or its first `end` seconds)."""
    face_model = load_face_model(config.face_model)
    if info.is_image:
        load_general_model(face_model.name)  # a one-shot actor needs one: fail now, not after the fit
    if config.refine_init:
        general_refiner(config.refine_init, config.refine)
    FliteSynthesizer().check_installed()  # and every actor a voice
    settings = {
        "face_model": config.face_model,
        "face_model_name": face_model.name,
        "face_model_vertices": face_model.num_vertices,
        "photo": info.is_image,
        **asdict(config),
    }
    source_sha256 = file_sha256(source)
    inputs = stage_inputs(source_sha256, stage_settings(config, face_model, info))
    existing = ActorBundle.resumable(actor, source_sha256, overwrite)
    # Tracking decodes every frame and finds the face in each: a video that cannot be used is
    # refused here, before the bundle is touched.
    done = existing is not None and existing.is_done("track", inputs["track"])
    tracked = None if done else track_face(video, config, progress)
    with writing_bundle(actor):
        bundle = ActorBundle.create(actor, source, settings, overwrite)
        ctx = StageContext(video, info, bundle, face_model.to(device), config, device, progress, tracked)
        _run_stages(ctx, source, inputs)
    return bundle


def _run_stages(ctx: StageContext, source: Path, inputs: dict[str, dict]) -> None:
    bundle, info, config = ctx.bundle, ctx.info, ctx.config
    with bundle_log(bundle.root):
        log.info(
            "personalize %s (%s) into %s with face model %s on %s (talkface %s)",
            source.name,
            "photo"
            if info.is_image
            else f"{info.duration:.1f} s video"
            if config.end is None
            else f"its first {info.duration:.1f} s",
            bundle.root,
            ctx.face_model.name,
            ctx.device,
            toolkit_version(),
        )
        overall = tqdm(STAGES, desc="personalize", unit="stage", disable=not ctx.progress)
        for name in overall:
            overall.set_postfix_str(name)
            if bundle.is_done(name, inputs[name]):
                log.info("%s: done before, skipped", name)
            else:
                run, files = STAGE_RUNNERS[name], STAGE_FILES[name]
                start = time.perf_counter()
                metrics = run(ctx)
                written = [file for file in files if bundle.path(file).exists()]
                bundle.record(name, inputs[name], written, metrics, time.perf_counter() - start)
                log.info(
                    "%s: %.1f s, %s",
                    name,
                    time.perf_counter() - start,
                    ", ".join(f"{k} {v}" for k, v in metrics.items()),
                )


def stage_inputs(source_sha256: str, per_stage: dict[str, dict]) -> dict[str, dict]:
    """Each stage's inputs, whose fingerprint decides whether it reruns: its settings and the
    fingerprint of the stage before it (the source video's hash for the first)."""
    inputs, upstream = {}, source_sha256
    for name in STAGES:
        inputs[name] = {"upstream": upstream, **per_stage[name]}
        upstream = fingerprint(inputs[name])
    return inputs


def unfinished_stages(video: str | os.PathLike, actor: str | os.PathLike, config: PersonalizeConfig) -> list[str]:
    """The stages `personalize(video, actor, config)` would run, without running any: [] when the
    bundle at `actor` is complete with these settings and its files are intact."""
    video, actor = Path(video), Path(actor)
    if not (actor / MANIFEST_NAME).is_file():
        return list(STAGES)
    bundle = ActorBundle.open(actor, verify_files=False)
    source = file_sha256(video)
    if bundle.manifest["source"]["sha256"] != source:
        return list(STAGES)
    inputs = stage_inputs(source, stage_settings(config, load_face_model(config.face_model), probe(video)))
    return [name for name in STAGES if not bundle.is_done(name, inputs[name])]


# ------------------------------------------------------------------------------------ actors
