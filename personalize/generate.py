"""`talkface generate`: a new video of an actor saying the contents of a speech file.

Per output frame (25 fps, frame t covering [t/25, (t+1)/25) s of the speech):
1. the actor's audio2pose network predicts expression and head pose from the speech, and the
   mouth follows the speech's phones (`audio2pose.articulation`): the synthesizer's own phone
   timings for text, a transcript or the decoded words force-aligned for audio; by default
   (`articulation="hybrid"`) with half the network's own mouth motion on top, the actor's habits;
2. a background frame of the actor's video is chosen and the head pose settled (`plan_frames`,
   one of `POSE_MODES`);
3. the face is synthesized from the actor's own pixels (`synthesis="image"`, the default,
   `render.synthesis`): the background frame is warped, at its own resolution, so that its face
   takes the predicted expression and pose, and the mouth opening is warped in from the frame of
   the actor whose mouth is nearest that shape (`render.mouth`). Or (`synthesis="render"`) the
   actor's face model is rendered (identity, detailed albedo, the background frame's lighting;
   mouth interior and teeth where the face model has them) into the face crop, colour-matched and
   blended into the background with a feathered mask, refined by the actor's GAN when the bundle
   has one, and the crop pasted back into the full frame;
4. frames are encoded with the speech as they are made, `batch_frames` at a time, so memory does
   not grow with the length of the speech.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from audio2pose.articulation import articulate, close_lips, lip_gaps, mouth_projection, temper
from audio2pose.blinks import BlinkConfig, BlinkStats, blink_stats, eye_openness, plan_eyes, relative_openness
from audio2pose.brows import brow_direction, brow_heights, brow_stats, emphasis, plan_brows
from audio2pose.features import MIN_SPEECH_RMS, audio_features, load_speech, num_video_frames, speech_rms
from audio2pose.metrics import landmark_aperture
from audio2pose.model import Motion, match_speed, window_spread
from audio2pose.phones import PhoneTimings, speech_phones
from audio2pose.tts import Speech, seconds_past
from audio2pose.visemes import VisemeConfig, pause_weights
from personalize.bundle import Actor
from personalize.frames import FramePlan, compose_batch, compose_warped, warp_batch
from recon3d.errors import InputError
from recon3d.facemodel import Coeffs
from recon3d.landmarks import INNER_LIPS_IBUG, mesh_to_ibug68
from recon3d.track import FaceTrack
from recon3d.video import AUDIO_RATE, VIDEO_FPS, VideoWriter, check_output
from render.composite import CompositeConfig
from render.eyes import moved_eyes
from render.face import FaceRenderer
from render.keyframes import KeyframeConfig, hold_backgrounds, match_backgrounds
from render.mouth import MouthConfig, match_mouths, mouth_landmarks
from render.synthesis import FaceWarper, SynthesisConfig, fill_opening

log = logging.getLogger("talkface")

PoseMode = Literal["reassign", "predicted", "source"]
Synthesis = Literal["image", "render"]
Articulation = Literal["hybrid", "phones", "network"]
GUESSED_PHONES = ("decoded", "phone-loop")
"""`audio2pose.phones.PhoneTimings.source`s that are a recogniser's guess, not the words said."""
POSE_MODES: tuple[str, ...] = ("reassign", "predicted", "source")
"""reassign: Yi et al.: each output frame takes the pose of its matched background frame, so face
and background agree exactly. predicted: the network's pose; the background frame's head is warped
to follow it. source: dubbing: the actor video's own frames and head motion in order (ping-pong
looped for longer speech), only the expression follows the new speech."""
PHOTO_POSE_AMPLITUDE = 0.9
"""A photo actor's head pose spread, in units of the general model's (a photo has no footage to
measure): the mean over the 20 shared clips of `window_spread` at their held-out lengths."""


@dataclass
class GenerateConfig:
    pose_mode: PoseMode = "predicted"
    """Where the head pose comes from. predicted: the network's, the real frame warped to follow it
    (always for a photo actor); reassign (Yi et al.): the matched real frame's; source (dubbing):
    the actor video's own frames and head motion in order. predicted has the best head-pose
    similarity on the shared clips, its seams as faint as the others' (docs/benchmarks.md, end-to-end benchmark)."""
    pose_amplitude: float | None = None
    """Spread of the predicted head pose in units of the actor's own (`audio2pose.model.restyle_pose`)
    (default: the spread of a stretch of the actor's footage as long as the speech,
    `audio2pose.model.window_spread`; for a photo `PHOTO_POSE_AMPLITUDE`)."""
    max_seconds: float = 600.0
    """Longest speech accepted; longer input is an error, not a truncated video."""
    min_speech_rms: float = MIN_SPEECH_RMS
    """Quietest speech accepted (RMS of [-1, 1] samples, about -60 dBFS)."""
    batch_frames: int = 16
    """Frames rendered and composited together (bounds memory)."""
    batch_pixels: int = 3_000_000
    """Image synthesis warps at most this many window pixels together (and at most `batch_frames`
    frames): larger batches' tensors are mapped and unmapped anew each time, which cost more than
    the warp saves by batching (docs/eyes.md#speed)."""
    articulation: Articulation = "hybrid"
    """Where the mouth's motion comes from. phones: the speech's phones, as visemes on the actor's
    own mouth shapes; network: the audio2pose network's expression as it is; hybrid: the phones,
    plus `habits` of the network's own mouth motion (docs/articulation.md: on held-out real speech
    of the 20 clips it follows the real mouth better than either alone)."""
    habits: float = 0.5
    """With articulation "hybrid": the share of the network's mouth motion about its mean added to
    the phones' (the actor's breaths, idle mouth and smiles, which no phone says): throughout for
    phones recognised from audio, only in pauses for known phones (text, a transcript)."""
    visemes: VisemeConfig = field(default_factory=VisemeConfig)
    """With articulation "phones" or "hybrid": the timing rules (lead, coarticulation, closure holds)."""
    guessed_amplitude: float = 0.75
    """With phones recognised from the audio (no text, no transcript), some of them wrong: how far
    the mouth moves from the actor's mean, in units of its full articulation (closures are still
    closed). On held-out real speech 0.75 keeps mouth r and lowers LMD below the network's (docs/benchmarks.md)."""
    synthesis: Synthesis = "image"
    """How the face is made. image: the actor's own frames warped to the new expression and pose
    at the video's resolution (`render.synthesis`); render: the face model rendered with the
    actor's albedo at the crop's size and blended in (refined when the bundle has a refiner),
    softer than the video (docs/design.md, image-based synthesis)."""
    warp: SynthesisConfig = field(default_factory=SynthesisConfig)
    mouth: MouthConfig = field(default_factory=MouthConfig)
    background_switch: float = 10.0
    """With synthesis="image" and the predicted pose: the cost of a cut to another background
    frame, in degrees of pose mismatch (L1 over the three angles) summed over the frames held
    instead (`render.keyframes.hold_backgrounds`)."""
    background_exp_weight: float = 10.0
    """... and the weight of the expression's RMS difference (in prior standard deviations) against
    the pose's degrees in choosing those frames (+0.2-0.5 dB over the pose alone on three clips)."""
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    refine: bool = True
    """With synthesis="render": refine the rendered faces with the actor's GAN when the bundle has
    one (`refine`)."""
    brows: bool = True
    """Raise the brows on the speech's emphasis (loudness and pitch peaks), at the actor's own
    rate and height (`audio2pose.brows`)."""
    eyes: BlinkConfig = field(default_factory=BlinkConfig)
    """Blinks and gaze, drawn with image synthesis under the predicted pose (a photo's always; in
    the other pose modes the footage's own eyes play with its frames)."""
    half_closed_cost: float = 100.0
    """With image synthesis and the predicted pose: the cost, in degrees of pose mismatch per unit
    of eye openness below 90% of the actor's open eye, of a background frame (its eyes held half
    closed look sleepy; blinks are drawn instead)."""

    def __post_init__(self) -> None:
        # Refused here, in one line naming the option (`personalize.options.apply_options`), not as
        # a traceback deep in the frame planning (a NaN pose) or a silently mirrored head (< 0).
        for what, value in (
            ("the pose amplitude", 0.0 if self.pose_amplitude is None else self.pose_amplitude),
            ("the minimum speech RMS", self.min_speech_rms),
            ("the guessed phones' amplitude", self.guessed_amplitude),
            ("the network's share of the mouth", self.habits),
            ("the background switch cost", self.background_switch),
            ("the background expression weight", self.background_exp_weight),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{what} is a finite number >= 0, not {value}")
        if not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ValueError(f"the longest speech is a finite number of seconds > 0, not {self.max_seconds}")
        if self.batch_frames < 1:
            raise ValueError(f"frames are made at least 1 at a time, not {self.batch_frames}")
        if self.batch_pixels < 1:
            raise ValueError(f"at least 1 pixel is warped at a time, not {self.batch_pixels}")


def ping_pong(num_frames: int, length: int) -> np.ndarray:
    """Indices 0, 1, ..., length-1, length-2, ..., 1, 0, 1, ... for `num_frames` frames."""
    if length <= 1:
        return np.zeros(num_frames, np.int64)
    phase = np.arange(num_frames) % (2 * length - 2)
    return np.where(phase < length, phase, 2 * length - 2 - phase)


def predicted_backgrounds(
    output_degrees: np.ndarray,
    training_degrees: np.ndarray,
    output_exp: np.ndarray,
    training_exp: np.ndarray,
    exp_std: float,
    config: GenerateConfig,
    eye_openness: np.ndarray | None = None,
) -> np.ndarray:
    """(T,) the actor's frame lending each output frame its background when the output keeps its
    own head pose (mode predicted): for image synthesis, the frame nearest the pose and expression
    (in prior standard deviations), held or played on (`render.keyframes.hold_backgrounds`: a
    still head gets a still background, and the warp starts from the nearest face); for the
    render, Yi et al.'s keyframes on the pose. `eye_openness`: (N,) the training frames' eye
    openness over the actor's open eye, to steer away from frames with half-closed eyes."""
    if config.synthesis == "image":
        return hold_backgrounds(
            output_degrees,
            training_degrees,
            config.background_switch,
            output_exp / exp_std,
            training_exp / exp_std,
            config.background_exp_weight,
            None if eye_openness is None else config.half_closed_cost * np.clip(0.9 - eye_openness, 0, None),
        )
    return match_backgrounds(output_degrees, training_degrees, config.keyframes).indices


def plan_frames(
    motion: Motion,
    recon: Coeffs,
    mode: str,
    config: GenerateConfig = GenerateConfig(),
    exp_std: float = 1.0,
    eye_openness: np.ndarray | None = None,
) -> FramePlan:
    """Background indices and poses of every output frame for a pose mode (see `POSE_MODES`).

    `recon`: the actor's per-frame coefficients in its video (N frames); `exp_std`: the face
    model's expression prior deviation; `eye_openness`: see `predicted_backgrounds`."""
    recon_angle, recon_trans = recon.angle.cpu().numpy(), recon.trans.cpu().numpy()
    exp = motion.exp.cpu().numpy()
    num_frames = len(exp)
    if mode == "source":
        background = ping_pong(num_frames, len(recon_angle))
    elif mode == "reassign":
        background = match_backgrounds(motion.angle_degrees(), np.degrees(recon_angle), config.keyframes).indices
    elif mode == "predicted":
        background = predicted_backgrounds(
            motion.angle_degrees(), np.degrees(recon_angle), exp, recon.exp.cpu().numpy(), exp_std, config, eye_openness
        )
    else:
        raise ValueError(f"unknown pose mode {mode!r}; one of {', '.join(POSE_MODES)}")
    if mode == "predicted":
        angle, trans = motion.angle.cpu().numpy(), motion.trans.cpu().numpy()
    else:
        angle, trans = recon_angle[background], recon_trans[background]
    return FramePlan(background.astype(np.int64), exp, angle.astype(np.float32), trans.astype(np.float32))


@dataclass(frozen=True)
class GenerateResult:
    output: Path
    num_frames: int
    seconds: float
    """Wall time of the whole job."""
    pose_mode: str
    seam_visibility: float
    """Mean over frames of `render.composite.seam_visibility` of the blended face crop (about 1:
    the paste boundary is no sharper than the face's own texture)."""
    angles: np.ndarray
    """`(T, 3)` head pose rendered in each frame: pitch, yaw, roll in radians (the frame plan's)."""


def check_speech(path: Path | str, audio: np.ndarray, config: GenerateConfig) -> None:
    seconds = len(audio) / AUDIO_RATE
    if seconds > config.max_seconds:
        raise InputError(
            f"{path}: the speech is {seconds_past(seconds, config.max_seconds)} s long, the limit is "
            f"{config.max_seconds:g} s; "
            "split it, or raise --max-seconds"
        )
    rms = speech_rms(audio)
    if rms < config.min_speech_rms:
        raise InputError(f"{path}: the speech is silent (RMS {rms:.1e}); give a recording with speech in it")


def plan_speech(
    actor: Actor,
    audio: np.ndarray,
    num_frames: int,
    config: GenerateConfig,
    device: torch.device | str = "cpu",
    phones: PhoneTimings | None = None,
    progress: bool = False,
) -> tuple[FramePlan, str]:
    """What `generate` renders for `audio` (16 kHz mono, `num_frames` at 25 fps): the frame plan
    and the pose mode used (always predicted for a one-shot actor, whose one frame has one pose).
    With `config.articulation` "phones" or "hybrid", the mouth follows `phones` (decoded from the
    audio when None)."""
    network = actor.audio2pose.to(device)
    mode = "predicted" if actor.is_photo else config.pose_mode
    features = audio_features(audio, num_frames, network.config.features, progress)
    motion = network.predict(features, pose_amplitude(actor, num_frames, config))
    if not actor.is_photo:  # a photo has no footage whose speed to match
        filmed = actor.recon.split("cpu")
        pose = match_speed(
            torch.cat([motion.angle, motion.trans], -1).cpu().numpy(),
            torch.cat([filmed.angle, filmed.trans], -1).numpy(),
        )
        pose = torch.from_numpy(pose).to(motion.angle)
        motion = dataclasses.replace(motion, angle=pose[:, :3], trans=pose[:, 3:])
    if config.articulation != "network":
        phones = phones if phones is not None else speech_phones(audio, progress=progress)
        projection, filmed = mouth_projection(actor.face_model), actor.recon.split("cpu")
        exp = articulate(
            motion.exp.cpu().numpy(),
            phones,
            actor.mouth,
            projection,
            VIDEO_FPS,
            config.visemes,
            actor.face_model.exp_range,
            _habits(phones, num_frames, config),
        )
        if phones.source in GUESSED_PHONES:
            exp = temper(exp, filmed.exp.numpy().mean(0), projection, config.guessed_amplitude)
        exp = close_lips(exp, phones, actor.mouth, actor.face_model, filmed.id[0], VIDEO_FPS, config.visemes)
        motion = dataclasses.replace(motion, exp=torch.from_numpy(exp))
    track = actor.track()
    if config.brows:
        motion = dataclasses.replace(
            motion, exp=motion.exp + torch.from_numpy(planned_brows(actor, track, audio, num_frames))
        )
    coeffs = actor.recon.split("cpu")
    drawn = config.synthesis == "image" and mode == "predicted"
    openness, stats = actor_eyes(track, config.eyes) if drawn else (None, None)
    plan = plan_frames(motion, coeffs, mode, config, actor.face_model.exp_prior_std, openness)
    if config.synthesis == "image":
        plan = dataclasses.replace(plan, mouth=plan_mouths(actor, plan, config.mouth))
    eyes = plan_eyes(audio, AUDIO_RATE, num_frames, VIDEO_FPS, stats, config.eyes) if drawn else None
    if eyes is not None:
        plan = dataclasses.replace(plan, closure=eyes[0], gaze=eyes[1])
    return plan, mode


def planned_brows(actor: Actor, track: FaceTrack, audio: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, K) expression offsets: the brow raises on the speech's emphasis (`audio2pose.brows`)
    at the rate and height of the actor's tracked footage `track`."""
    stats = brow_stats(brow_heights(mesh_to_ibug68(track.mesh_raw)), VIDEO_FPS)
    lift = plan_brows(emphasis(audio, AUDIO_RATE, num_frames, VIDEO_FPS), VIDEO_FPS, stats)
    log.info("brows: %.0f raises a minute of %.3f eye widths (%s)", stats.rate, stats.height, stats.source)
    return lift[:, None] * brow_direction(actor.face_model)[None]


def actor_eyes(track: FaceTrack, config: BlinkConfig) -> tuple[np.ndarray, BlinkStats]:
    """(N,) the actor's frames' eye openness over its open eye, and its blinks and gaze, from the
    unsmoothed landmarks of its tracked footage."""
    raw = mesh_to_ibug68(track.mesh_raw)
    stats = blink_stats(raw, VIDEO_FPS, track.mesh_raw, config)
    log.info(
        "eyes: %.0f blinks a minute of %.1f frames (%s), gaze spread %.3f eye widths",
        stats.rate,
        stats.frames,
        stats.source,
        stats.gaze,
    )
    return relative_openness(eye_openness(raw)), stats


def pose_amplitude(actor: Actor, num_frames: int, config: GenerateConfig) -> float | torch.Tensor:
    """`config.pose_amplitude`, or by default (None) per pose coefficient the spread of a stretch
    of `num_frames` of the actor's footage (`PHOTO_POSE_AMPLITUDE` for a photo)."""
    if config.pose_amplitude is not None:
        return config.pose_amplitude
    if actor.is_photo:
        return PHOTO_POSE_AMPLITUDE
    recon = actor.recon.split("cpu")
    pose = torch.cat([recon.angle, recon.trans], -1).numpy()
    return torch.from_numpy(window_spread(pose, num_frames)).float()


def _habits(phones: PhoneTimings, num_frames: int, config: GenerateConfig) -> float | np.ndarray:
    """Per frame, the share of the network's mouth motion the articulated mouth takes on: with
    articulation "hybrid", `config.habits` where the phones are a recogniser's guess (the network
    hears the speech too: a second opinion); where they are known (text, a transcript) only in the
    pauses, which no phone shapes (in a word it would only blur known articulation)."""
    if config.articulation != "hybrid":
        return 0.0
    if phones.source in GUESSED_PHONES:
        return config.habits
    return config.habits * pause_weights(phones, num_frames, VIDEO_FPS, config.visemes)


def plan_mouths(actor: Actor, plan: FramePlan, config: MouthConfig = MouthConfig()) -> np.ndarray:
    """(T,) per planned frame the actor's frame whose mouth lends the interior, or -1."""
    coeffs = actor.recon.split("cpu")
    target = dataclasses.replace(
        coeffs[torch.from_numpy(plan.background)], exp=torch.from_numpy(plan.exp), angle=torch.from_numpy(plan.angle)
    )
    return match_mouths(mouth_landmarks(actor.face_model, target), mouth_landmarks(actor.face_model, coeffs), config)


def speech_timings(
    audio: np.ndarray, speech: Speech | None, transcript: str | None, config: GenerateConfig, progress: bool = False
) -> PhoneTimings | None:
    """The phones the mouth follows: a synthesizer's own, else the text or transcript aligned,
    else the decoded words aligned; None when the network articulates."""
    if config.articulation == "network":
        return None
    if speech is not None and speech.phones is not None:
        return speech.phones
    timings = speech_phones(audio, speech.text if speech is not None else transcript, progress)
    log.info("mouth: %d phones (%s)", len(timings.phones), timings.source)
    return timings


def generate(
    actor: Actor,
    speech: str | os.PathLike | np.ndarray | Speech,
    output: str | os.PathLike,
    config: GenerateConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    transcript: str | None = None,
) -> GenerateResult:
    """Writes OUTPUT (mp4, the actor video's size, 25 fps, the speech as its audio) atomically:
    on any error no file is left under that name. `speech`: a speech file, 16 kHz samples, or
    synthesized speech (`audio2pose.voice.speak`'s, with its phone timings); `transcript`: the
    words said in a speech file or samples, to align the mouth to (default: decoded)."""
    start = time.perf_counter()
    config, device, output = config or GenerateConfig(), torch.device(device), Path(output)
    spoken = speech if isinstance(speech, Speech) else None
    check_output(output, ".mp4", [actor.bundle.root, None if isinstance(speech, np.ndarray | Speech) else speech])
    if spoken is not None:
        speech = spoken.audio
    if isinstance(speech, np.ndarray):
        audio, num_frames, source = speech, num_video_frames(len(speech)), "the synthesized speech"
    else:
        audio, num_frames = load_speech(speech, None, actor.audio2pose.config.features)
        source = Path(speech)
    check_speech(source, audio, config)
    plan, mode = plan_speech(
        actor, audio, num_frames, config, device, speech_timings(audio, spoken, transcript, config, progress), progress
    )
    if mode != config.pose_mode:
        log.info("one-shot actor (a photo): pose mode predicted, the photo's head warped to follow the speech")
    recon = actor.recon
    coeffs = recon.split("cpu")
    if config.synthesis == "image":
        warper = FaceWarper(actor.face_model, recon.crop, recon.camera, config.warp, device)
        filmed_lips = actor.track().ibug68
        # Frames whose lips close further than the background frame's did: its filmed opening is
        # filled before they are warped together (the fit's lip rims may lie inside it).
        closing = lip_gaps(actor.face_model, coeffs.id[0], plan.exp) < landmark_aperture(filmed_lips)[plan.background]
        eyes = (
            None
            if plan.closure is None
            else functools.partial(
                moved_eyes, actor.face_model.subset("landmarks").to(device), recon.camera, recon.crop
            )
        )
    else:
        renderer = FaceRenderer(actor.face_model, recon.albedo, recon.camera, device)
        refiner = actor.refiner if config.refine else None
        if refiner:
            refiner.to(device)
    bar = tqdm(total=num_frames, desc="generate", unit="frame", disable=not progress)
    seams = []
    with actor.frames() as frames, VideoWriter(output, VIDEO_FPS, audio, AUDIO_RATE) as writer:
        if config.synthesis == "image":
            grow = config.warp.opening_grow * recon.crop.side
            # Background frames with their opening filled with lip, for closing lips no frame lends
            # (cached: a photo actor has one frame).
            closed_frames = functools.lru_cache(maxsize=32)(
                lambda index: fill_opening(frames[index], filmed_lips[index, INNER_LIPS_IBUG], grow)
            )
        step = config.batch_frames
        if config.synthesis == "image":
            step = max(1, min(step, config.batch_pixels // math.prod(warper.window_size)))
        batches = [np.arange(first, min(first + step, num_frames)) for first in range(0, num_frames, step)]
        # Image synthesis: the next batch's warps (torch, cv2 and numpy, which let go of the GIL)
        # are made in a second thread while this batch is composed and encoded; one thread
        # left most of the second core idle.
        with ThreadPoolExecutor(max_workers=1) as pool:
            image = config.synthesis == "image"
            warp = functools.partial(warp_batch, warper, plan, coeffs, filmed_lips, eyes) if image else None
            pending = pool.submit(warp, batches[0]) if image else None
            for i, batch in enumerate(batches):
                if pending is not None:
                    warped = pending.result()
                    if i + 1 < len(batches):
                        pending = pool.submit(warp, batches[i + 1])
                    made = compose_warped(frames, closed_frames, closing, warper, plan, batch, *warped)
                else:
                    made = compose_batch(
                        frames, recon.crop, renderer, refiner, plan, batch, coeffs, mode, config.composite
                    )
                for frame, seam in made:
                    writer.write(frame)
                    seams.append(seam)
                bar.update(len(batch))
    bar.close()
    seam = float(np.nanmean(seams)) if np.isfinite(seams).any() else float("nan")
    result = GenerateResult(output, num_frames, time.perf_counter() - start, mode, seam, plan.angle)
    log.info(
        "%d frames (%.1f s of speech) in %.1f s (%.1f frames/s), pose mode %s, seam visibility %.2f",
        num_frames,
        num_frames / VIDEO_FPS,
        result.seconds,
        num_frames / result.seconds,
        mode,
        seam,
    )
    return result
