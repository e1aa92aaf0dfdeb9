"""The `talkface` subcommands, one dataclass each: fields are the options, `main` runs it."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile

from audio2pose.model import AudioToPoseConfig
from audio2pose.train import FinetuneConfig, PretrainAudio2PoseConfig, TrainConfig, pretrain_audio2pose
from audio2pose.tts import CommandSynthesizer, Speech
from audio2pose.voice import speak
from personalize.evaluate import EvaluateConfig, evaluate, evaluate_batch
from personalize.generate import Articulation, GenerateConfig, PoseMode, Synthesis, check_output, generate
from personalize.jobs import JobsConfig, run_jobs
from personalize.manifest import read_manifest
from personalize.pipeline import Actor, PersonalizeConfig, personalize
from personalize.samples import sample_photo, sample_speech
from recon3d.device import DeviceName, resolve_device
from recon3d.distributed import torchrun_world
from recon3d.errors import InputError
from recon3d.export import export_track
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.pretrain import PretrainReconConfig, RegressorTrainer
from recon3d.reconstruct import export_reconstruction, reconstruct_clip
from recon3d.regressor import CoeffRegressor, RegressorConfig
from recon3d.track import TrackConfig, track_video
from recon3d.video import AUDIO_RATE, atomic_path
from refine.actor import ACTOR_REFINE, GPU_REFINE_SIZE
from refine.memory import MemoryConfig
from refine.networks import NetworkConfig
from refine.train import RefineTrainConfig, pretrain_refiner

log = logging.getLogger("talkface")


def option(help: str, *flags: str, **kwargs) -> dict:
    """Field metadata for the CLI: help text and optional explicit flags."""
    return {"help": help, **({"flags": list(flags)} if flags else {}), **kwargs}


@dataclass
class TrackCommand:
    """Track the face in a video: dense landmarks, boxes, confidence, the stable crop, a preview.

    Writes OUTPUT/track.npz (landmarks and crop transform), OUTPUT/crop.mp4 (the head region at
    --crop-size, with the audio) and OUTPUT/preview.mp4 (landmarks drawn on the frames). A photo
    counts as a one-frame video (then crop.png and preview.png).
    """

    video: Path | None = field(
        default=None,
        metadata=option("video or photo with one face (default: scikit-image's astronaut photo)", positional=True),
    )
    output: Path = field(default=Path("out/track"), metadata=option("output directory", "-o", "--output"))
    crop_size: int = field(default=256, metadata=option("side of the crop in pixels"))
    crop_scale: float = field(default=1.8, metadata=option("crop side as a multiple of the largest face box"))
    max_gap: int = field(default=5, metadata=option("longest run of frames without a face that is interpolated"))
    preview: bool = field(default=True, metadata=option("write the preview with landmarks drawn"))

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: tracking %s", video)
        config = TrackConfig(crop_size=self.crop_size, crop_scale=self.crop_scale, max_gap=self.max_gap)
        track = track_video(video, config, progress=progress)
        paths = export_track(video, track, self.output, preview=self.preview, progress=progress)
        log.info(
            "%d frames, face found in %d (%.1f%%), confidence min %.2f mean %.2f; crop %.0f px square at (%.0f, %.0f)",
            track.num_frames, track.detected.sum(), 100 * track.detected.mean(), track.confidence.min(),
            track.confidence.mean(), track.crop.side, track.crop.x0, track.crop.y0,
        )
        for path in paths:
            log.info("wrote %s", path)


FACE_MODEL_HELP = (
    "face model: 'default' (ICT-FaceKit if installed, see README, else the built-in one), 'ict', 'builtin', "
    "a FaceXModel folder, a BFM_model_front.mat or a converted .npz"
)


@dataclass
class ReconstructCommand:
    """Fit the 3D face model to every frame of a video: coefficients, albedo, an overlay to check.

    Writes OUTPUT/coeffs.npz (per-frame coefficients in the face model's layout, camera, crop,
    per-vertex albedo, per-frame landmark error and PSNR; see README) and OUTPUT/overlay.mp4 (the
    fitted face rendered over the frames, with the audio).
    """

    video: Path | None = field(
        default=None,
        metadata=option("video or photo with one face (default: scikit-image's astronaut photo)", positional=True),
    )
    output: Path = field(default=Path("out/reconstruct"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    regressor: Path | None = field(default=None, metadata=option(
        "coefficient regressor checkpoint (from `talkface pretrain recon`) to start the fit from"))
    landmark_steps: int = field(default=FitConfig.landmark_steps, metadata=option("steps of the landmark fit"))
    photometric_steps: int = field(default=FitConfig.photometric_steps, metadata=option(
        "steps of the photometric fit (0: landmarks only)"))
    render_size: int = field(default=FitConfig.render_size, metadata=option("image side of the photometric fit"))
    crop_size: int = field(default=256, metadata=option("side of the face crop in pixels"))
    overlay: bool = field(default=True, metadata=option("write the overlay video"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: reconstructing %s", video)
        device = resolve_device(self.device)
        model = load_face_model(self.face_model)
        log.info("face model %s: %d vertices, %d coefficients", model.name, model.num_vertices, model.layout.total)
        start = time.perf_counter()
        track = track_video(video, TrackConfig(crop_size=self.crop_size), progress=progress)
        regressor = None if self.regressor is None else CoeffRegressor.load(self.regressor, model).to(device)
        config = FitConfig(landmark_steps=self.landmark_steps, photometric_steps=self.photometric_steps,
                           render_size=self.render_size)
        recon, _ = reconstruct_clip(video, model, config, track=track, device=device, regressor=regressor,
                                    progress=progress)
        elapsed = time.perf_counter() - start
        log.info("%d frames in %.1f s (%.1f frames/s): landmark error %.2f%% of the eye distance, skin PSNR %.1f dB",
                 recon.num_frames, elapsed, recon.num_frames / elapsed, 100 * recon.landmark_error.mean(),
                 recon.psnr.mean())
        for path in export_reconstruction(video, recon, model, self.output, self.overlay, device, progress):
            log.info("wrote %s", path)


@dataclass
class PretrainReconCommand:
    """Train the coefficient regressor from scratch on a folder of talking-head clips.

    Weakly supervised with the fitting's losses (landmarks, skin photometric error, priors); the
    last 10% of each clip is held out. Writes OUTPUT/regressor.pt every epoch (rerun to resume)
    and caches the clips' tracks in OUTPUT/tracks.
    """

    corpus: Path = field(metadata=option("folder of talking-head videos"))
    output: Path = field(default=Path("out/pretrain/recon"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    epochs: int = field(default=PretrainReconConfig.epochs, metadata=option("training epochs"))
    batch_size: int = field(default=PretrainReconConfig.batch_size, metadata=option("frames per batch"))
    lr: float = field(default=PretrainReconConfig.lr, metadata=option("Adam learning rate"))
    image_size: int = field(default=RegressorConfig.image_size, metadata=option("input crop side of the network"))
    width: int = field(default=RegressorConfig.width, metadata=option("channels of the first ResNet stage"))
    max_frames_per_clip: int = field(default=0, metadata=option("training frames taken per clip (0: all)"))
    seed: int = field(default=0, metadata=option("random seed"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        model = load_face_model(self.face_model)
        config = PretrainReconConfig(
            regressor=RegressorConfig(image_size=self.image_size, width=self.width),
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            max_frames_per_clip=self.max_frames_per_clip, seed=self.seed,
        )
        with torchrun_world(resolve_device(self.device)) as (world, device):
            result = RegressorTrainer(model, config, device, world).train(self.corpus, self.output,
                                                                          progress and world.is_main)
            log.info("wrote %s (held-out landmark error %.2f%%)", self.output / "regressor.pt",
                     100 * result.get("val_landmark_error", float("nan")))


@dataclass
class PretrainAudio2PoseCommand:
    """Train the general audio -> expression + head pose network on a folder of talking-head clips.

    Each clip is reconstructed first (cached in OUTPUT/cache, so a rerun skips it); its
    expression and pose become the targets of its own soundtrack's MFCCs. The last
    --val-fraction of every clip is held out and its loss logged. Writes OUTPUT/audio2pose.pt
    (rerun to resume) and the loss curves in OUTPUT/history.csv.
    """

    corpus: Path = field(metadata=option("folder of talking-head videos"))
    output: Path = field(default=Path("out/pretrain/audio2pose"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    steps: int = field(default=PretrainAudio2PoseConfig().train.steps, metadata=option("training steps"))
    batch_size: int = field(default=TrainConfig.batch_size, metadata=option("windows per step"))
    seq_len: int = field(default=TrainConfig.seq_len, metadata=option("frames per training window"))
    lr: float = field(default=PretrainAudio2PoseConfig().train.lr, metadata=option("Adam learning rate"))
    weight_decay: float = field(default=PretrainAudio2PoseConfig().train.weight_decay, metadata=option("AdamW weight decay"))
    lstm_hidden: int = field(default=AudioToPoseConfig.lstm_hidden, metadata=option("LSTM hidden units"))
    lstm_layers: int = field(default=AudioToPoseConfig.lstm_layers, metadata=option("LSTM layers"))
    dropout: float = field(default=AudioToPoseConfig.dropout, metadata=option("dropout rate of the network"))
    log_every: int = field(default=PretrainAudio2PoseConfig.log_every, metadata=option("steps between loss-curve records"))
    val_fraction: float = field(default=PretrainAudio2PoseConfig.val_fraction, metadata=option("tail of each clip held out"))
    landmark_steps: int = field(default=FitConfig.landmark_steps, metadata=option("landmark-fit steps of the reconstructions"))
    seed: int = field(default=0, metadata=option("random seed"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        model = load_face_model(self.face_model)
        config = PretrainAudio2PoseConfig(
            model=AudioToPoseConfig(lstm_hidden=self.lstm_hidden, lstm_layers=self.lstm_layers, dropout=self.dropout),
            train=TrainConfig(steps=self.steps, batch_size=self.batch_size, seq_len=self.seq_len, lr=self.lr,
                              weight_decay=self.weight_decay, seed=self.seed),
            val_fraction=self.val_fraction, log_every=self.log_every, fit=FitConfig(landmark_steps=self.landmark_steps),
        )
        with torchrun_world(resolve_device(self.device)) as (world, device):
            result = pretrain_audio2pose(self.corpus, self.output, model, config, device, progress and world.is_main,
                                         world)
            log.info("wrote %s (held-out loss %.4g)", self.output / "audio2pose.pt", result.get("val_total", float("nan")))


@dataclass
class PretrainRefineCommand:
    """Train the general refinement GAN (memory-augmented, Yi et al.) on a folder of talking-head clips.

    Each clip is tracked, reconstructed and rendered from its own coefficients once (cached in
    OUTPUT/cache); the GAN learns to turn the renders into the real frames. The last
    --val-fraction of every clip is held out and its face-crop PSNR (raw render and refined)
    logged at each checkpoint. Writes OUTPUT/refiner.pt (for `talkface personalize
    --refine-init`), the training checkpoint (rerun to resume, with more --steps to go on) and
    sample grids in OUTPUT/samples.
    """

    corpus: Path = field(metadata=option("folder of talking-head videos"))
    output: Path = field(default=Path("out/pretrain/refine"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    steps: int = field(default=RefineTrainConfig.steps, metadata=option("training steps"))
    size: int | None = field(default=None, metadata=option(
        f"side of the face images, a power of two (default: {ACTOR_REFINE.network.size} on a CPU, {GPU_REFINE_SIZE} "
        "on a GPU; personalize's --refine-size must match)"))
    batch_size: int = field(default=RefineTrainConfig.batch_size, metadata=option("frames per step"))
    memory_slots: int = field(default=MemoryConfig.slots, metadata=option("slots of the memory network"))
    log_every: int = field(default=ACTOR_REFINE.log_every, metadata=option("steps between loss-curve records"))
    val_fraction: float = field(default=0.3, metadata=option("tail of each clip held out"))
    seed: int = field(default=0, metadata=option("random seed"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        with torchrun_world(resolve_device(self.device)) as (world, device):
            config = dataclasses.replace(
                ACTOR_REFINE, network=refine_network(self.size, device, "--size"),
                memory=MemoryConfig(slots=self.memory_slots), steps=self.steps, batch_size=self.batch_size,
                log_every=self.log_every, seed=self.seed)
            _, history = pretrain_refiner(self.corpus, self.output, load_face_model(self.face_model), config,
                                          val_fraction=self.val_fraction, device=device,
                                          progress=progress and world.is_main, world=world)
            last = history[-1]
            log.info("wrote %s (held-out face-crop PSNR %.2f dB, raw render %.2f dB)", self.output / "refiner.pt",
                     last.get("held_out_psnr", float("nan")), last.get("held_out_raw_psnr", float("nan")))


def refine_network(size: int | None, device, flag: str) -> NetworkConfig:
    """The CPU preset's refinement networks at `size` (default: the CPU or GPU preset's size)."""
    size = size or (GPU_REFINE_SIZE if device.type == "cuda" else ACTOR_REFINE.network.size)
    try:
        return dataclasses.replace(ACTOR_REFINE.network, size=size)
    except ValueError as err:
        raise InputError(f"{flag} {size}: {err}") from None


@dataclass
class PersonalizeCommand:
    """Learn an actor from a video (or a photo): face, albedo, lighting, talking style, backgrounds.

    Runs the stages ingest, track, reconstruct, albedo, audio2pose and voice into the actor
    bundle ACTOR (a directory; see README, "Actor bundles"). Rerunning skips the stages that finished
    with the same inputs, so an interrupted job resumes. A photo is a one-shot actor: its head
    motion and expression come from the general audio2pose model (scripts/setup.sh trains the
    built-in face model's from a corpus of talking-head clips). The voice stage matches a Flite
    voice to the actor's speech for text input (CMU Flite must be installed). The log is kept in
    ACTOR/personalize.log.
    """

    video: Path | None = field(
        default=None,
        metadata=option("video of the actor speaking (>= 2 s, one face), or a photo (default: scikit-image's "
                        "astronaut photo)", positional=True),
    )
    actor: Path = field(default=Path("out/actor"), metadata=option("actor bundle directory to write (or resume)"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    crop_size: int = field(default=PersonalizeConfig.crop_size, metadata=option("side of the face crop in pixels"))
    landmark_steps: int = field(default=FitConfig.landmark_steps, metadata=option("steps of the landmark fit"))
    photometric_steps: int = field(default=FitConfig.photometric_steps, metadata=option(
        "steps of the photometric fit (0: landmarks only)"))
    audio2pose_steps: int = field(default=FinetuneConfig().scratch.steps, metadata=option(
        "training steps of the actor's audio -> expression + pose network"))
    voice_sample: Path | None = field(default=None, metadata=option(
        "recording of the actor's speech to learn the voice from (default: the video's soundtrack; "
        "without one a photo actor speaks text in the unmatched default voice)"))
    refine_steps: int = field(default=0, metadata=option(
        "training steps of the actor's refinement GAN (0: none; only `generate --synthesis render` uses it, "
        f"{ACTOR_REFINE.steps} is the preset)"))
    refine_size: int | None = field(default=None, metadata=option(
        f"side of the refinement GAN's face images, a power of two (default: {ACTOR_REFINE.network.size} on a CPU, "
        f"{GPU_REFINE_SIZE} on a GPU)"))
    refine_init: Path | None = field(default=None, metadata=option(
        "general refiner (OUTPUT/refiner.pt of `talkface pretrain refine`, same --refine-size) to fine-tune from "
        "(default: from scratch)"))
    end: float | None = field(default=None, metadata=option(
        "learn from the video up to this time only (seconds); the rest stays unseen, for `talkface evaluate --start`",
        metavar="SECONDS"))
    seed: int = field(default=0, metadata=option("random seed of the training"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def config(self, device: torch.device) -> PersonalizeConfig:
        """The settings these options give on `device` (the GAN's default size depends on it)."""
        refine = dataclasses.replace(ACTOR_REFINE, steps=self.refine_steps, seed=self.seed,
                                     network=refine_network(self.refine_size, device, "--refine-size"))
        finetune = FinetuneConfig()
        return PersonalizeConfig(
            face_model=self.face_model, crop_size=self.crop_size,
            fit=FitConfig(landmark_steps=self.landmark_steps, photometric_steps=self.photometric_steps),
            finetune=dataclasses.replace(finetune, scratch=dataclasses.replace(
                finetune.scratch, steps=self.audio2pose_steps, seed=self.seed)),
            voice_sample=None if self.voice_sample is None else str(self.voice_sample),
            refine=refine,
            refine_init=None if self.refine_init is None else str(self.refine_init),
            end=self.end,
        )

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: a one-shot actor from %s", video)
        device = resolve_device(self.device)
        config = self.config(device)
        start = time.perf_counter()
        bundle = personalize(video, self.actor, config, device, progress)
        log.info("actor bundle %s ready in %.1f s; next: talkface generate --actor %s --audio SPEECH.wav -o OUT.mp4",
                 bundle.root, time.perf_counter() - start, bundle.root)


TEXT_HELP = "text to say, in English (numbers, punctuation and any length are fine)"
TEXT_FILE_HELP = "UTF-8 text file to say"
TTS_COMMAND_HELP = ("your own speech engine (e.g. a neural voice-cloning one) instead of the matched Flite voice: a "
                    "command line with {text} (a file with one sentence), {wav} (where it writes its audio) and "
                    "optionally {reference} (a wav of the actor's speech)")


def read_text(text: str | None, text_file: Path | None) -> str | None:
    """The text of --text or --text-file (at most one), None when neither is given."""
    if text is not None and text_file is not None:
        raise InputError("give the text with --text or with --text-file, not both")
    if text_file is None:
        return text
    try:
        return text_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{text_file}: no such text file") from None
    except UnicodeDecodeError:
        raise InputError(f"{text_file}: not UTF-8 text; save it as UTF-8") from None


def say_text(actor: Actor, text: str, tts_command: str | None, progress: bool) -> Speech:
    """16 kHz speech of `text` in the actor's voice (or by the plugged-in engine)."""
    voice = actor.voice
    with tempfile.TemporaryDirectory(prefix="talkface-reference-") as tmp:
        engine = None
        if tts_command is not None:
            reference = None
            if len(voice.reference):
                reference = Path(tmp) / "reference.wav"
                wavfile.write(reference, AUDIO_RATE, voice.reference)
            engine = CommandSynthesizer(tts_command, reference)
        start = time.perf_counter()
        speech = speak(text, voice, engine, progress)
    log.info("said %d characters in %.1f s of speech (%s) in %.1f s", len(text), len(speech.audio) / AUDIO_RATE,
             engine.name if engine else f"flite:{voice.base_voice}" + (" matched" if voice.target else ""),
             time.perf_counter() - start)
    return speech


@dataclass
class GenerateCommand:
    """Make a video of an actor saying the contents of a speech file, or text.

    The output has the actor video's size, 25 fps, and the speech as its soundtrack (frame 0 =
    the speech's start). Any length up to --max-seconds: frames are made and written in batches.
    Pose modes: predicted (the network's head pose, the real frame warped to follow it; always
    used for a photo actor), reassign (Yi et al.: the head pose of the matched real frame),
    source (dubbing: the actor video's own frames and head motion in order, only the face's
    expression follows the new speech). The face is the actor's own frames warped to the new
    expression and pose at the video's resolution, the mouth from the frame whose mouth is
    nearest (--synthesis image), or the face model rendered (--synthesis render). Text is said in
    the actor's matched voice (see `talkface speak`).
    """

    actor: Path = field(default=Path("out/actor"), metadata=option("actor bundle from `talkface personalize`"))
    audio: Path | None = field(default=None, metadata=option(
        "speech to say: a wav or any audio/video file (default: pysptk's CMU ARCTIC sample)"))
    text: str | None = field(default=None, metadata=option(TEXT_HELP + ", instead of --audio"))
    text_file: Path | None = field(default=None, metadata=option(TEXT_FILE_HELP + ", instead of --audio"))
    tts_command: str | None = field(default=None, metadata=option(TTS_COMMAND_HELP))
    output: Path = field(default=Path("out/generated.mp4"), metadata=option("output video (.mp4)", "-o", "--output"))
    pose_mode: PoseMode = field(default=GenerateConfig.pose_mode, metadata=option("where the head pose comes from"))
    pose_amplitude: float = field(default=GenerateConfig.pose_amplitude, metadata=option(
        "spread of the predicted head motion, in units of the actor's own"))
    max_seconds: float = field(default=GenerateConfig.max_seconds, metadata=option("longest speech accepted"))
    transcript: str | None = field(default=None, metadata=option(
        "the words said in --audio, to align the mouth's phones to (default: the words are recognised)"))
    articulation: Articulation = field(default=GenerateConfig.articulation, metadata=option(
        "where the mouth's motion comes from: phones (the speech's phones on the actor's own mouth shapes) "
        "or network (the audio2pose network's expression)"))
    synthesis: Synthesis = field(default=GenerateConfig.synthesis, metadata=option(
        "how the face is made: image (the actor's own frames warped to the new face, at the video's resolution) "
        "or render (the face model rendered with the actor's albedo, then refined)"))
    refine: bool = field(default=True, metadata=option(
        "with --synthesis render: refine the rendered faces with the actor's GAN (when the bundle has one)"))
    face_model: str | None = field(default=None, metadata=option(
        "where the bundle's face model is now (default: where it was when the bundle was made)"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        text = read_text(self.text, self.text_file)
        if text is not None and self.audio is not None:
            raise InputError("give the speech as --audio or as text (--text, --text-file), not both")
        if text is not None and self.transcript is not None:
            raise InputError("--transcript is for --audio: text input is spoken with its own phone timings")
        check_output(self.output)  # before the text is said
        actor = Actor.load(self.actor, self.face_model)
        if text is not None:
            audio = say_text(actor, text, self.tts_command, progress)
        else:
            audio = self.audio
            if audio is None:
                audio = sample_speech()
                log.info("no --audio given: saying %s", audio)
        config = GenerateConfig(pose_mode=self.pose_mode, pose_amplitude=self.pose_amplitude,
                                max_seconds=self.max_seconds, synthesis=self.synthesis, refine=self.refine,
                                articulation=self.articulation)
        result = generate(actor, audio, self.output, config, resolve_device(self.device), progress, self.transcript)
        log.info("wrote %s", result.output)


@dataclass
class SpeakCommand:
    """Say text in an actor's voice, audio only (a 16 kHz wav).

    The voice is voice matching, not neural cloning: CMU Flite says the text in the voice chosen
    for the actor, and the WORLD vocoder moves its pitch (log F0 mean and spread) and spectral
    envelope (mel-cepstral mean and spread) to the actor's, as measured from their speech at
    personalize time. Plug in a cloning engine you have installed with --tts-command.
    """

    actor: Path = field(default=Path("out/actor"), metadata=option("actor bundle from `talkface personalize`"))
    text: str | None = field(default=None, metadata=option(TEXT_HELP))
    text_file: Path | None = field(default=None, metadata=option(TEXT_FILE_HELP))
    output: Path = field(default=Path("out/speech.wav"), metadata=option("output speech (.wav)", "-o", "--output"))
    tts_command: str | None = field(default=None, metadata=option(TTS_COMMAND_HELP))

    def main(self, progress: bool = True) -> None:
        text = read_text(self.text, self.text_file)
        if text is None:
            raise InputError("nothing to say: give the text with --text or --text-file")
        if self.output.suffix.lower() != ".wav":
            raise InputError(f"{self.output}: the output is a wav file; give a name ending in .wav")
        speech = say_text(Actor.load(self.actor), text, self.tts_command, progress).audio
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.output) as tmp:
            wavfile.write(tmp, AUDIO_RATE, (np.clip(speech, -1, 1) * 32767).astype(np.int16))
        log.info("wrote %s (%.1f s)", self.output, len(speech) / AUDIO_RATE)


@dataclass
class EvaluateCommand:
    """Measure an actor against real footage it never saw, into a report (metrics.json, report.html).

    Held-out input: --video (another video of the actor) or --start (the tail of the actor's own
    video; default: where `personalize --end` stopped learning). The actor says the held-out speech
    (or --text) into REPORT/generated.mp4, which is compared with the real frames: head-pose
    similarity with its baselines, lip sync, image quality driven by the real coefficients,
    identity, and with --text the voice (see README). With --batch MANIFEST --actors ROOT, every
    actor of the manifest is evaluated into REPORT/<name>/ (finished reports are kept) and the
    mean, min and max of every metric go into REPORT/summary.{json,md,html}.
    """

    actor: Path | None = field(default=None, metadata=option("actor bundle to evaluate"))
    video: Path | None = field(default=None, metadata=option("held-out video of the actor speaking"))
    start: float | None = field(default=None, metadata=option(
        "evaluate on the actor's own video from this time on (seconds; default: its --end)", metavar="SECONDS"))
    report: Path = field(default=Path("out/report"), metadata=option("report folder to write"))
    text: str | None = field(default=None, metadata=option(
        "say this text in the actor's voice instead of the held-out speech (adds the voice's speaker similarity)"))
    batch: Path | None = field(default=None, metadata=option(
        "manifest of actors (YAML or CSV, as for `talkface jobs run`) to evaluate each of"))
    actors: Path | None = field(default=None, metadata=option("folder of the manifest's actor bundles (ROOT/<name>)"))
    pose_mode: PoseMode = field(default=GenerateConfig.pose_mode, metadata=option("where the head pose comes from"))
    articulation: Articulation = field(default=GenerateConfig.articulation, metadata=option(
        "where the mouth's motion comes from: phones (the speech's phones on the actor's own mouth shapes) "
        "or network (the audio2pose network's expression)"))
    synthesis: Synthesis = field(default=GenerateConfig.synthesis, metadata=option(
        "how the generated video's face is made (as `talkface generate --synthesis`)"))
    face_model: str | None = field(default=None, metadata=option(
        "where the bundles' face model is now (default: where it was when they were made)"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        config = EvaluateConfig(generate=GenerateConfig(pose_mode=self.pose_mode, synthesis=self.synthesis,
                                                        articulation=self.articulation),
                                face_model=self.face_model)
        if self.batch is None:
            if self.actor is None or self.actors is not None:
                raise InputError("give --actor DIR (with --video or --start), or --batch MANIFEST --actors ROOT")
            evaluate(self.actor, self.report, self.video, self.start, self.text, config,
                     resolve_device(self.device), progress)
            log.info("wrote %s", self.report / "report.html")
            return
        if self.actors is None or self.actor is not None or self.video is not None or self.start is not None:
            raise InputError("--batch evaluates the manifest's actors: give --actors ROOT (the folder of their "
                             "bundles), not --actor, --video or --start")
        entries = read_manifest(self.batch, PersonalizeCommand)
        summary = evaluate_batch(entries, self.actors, self.report, self.text, config, resolve_device(self.device),
                                 progress)
        log.info("wrote %s", self.report / "summary.html")
        if summary["failed"]:
            raise InputError(f"{len(summary['failed'])} of {len(entries)} actors failed ({', '.join(summary['failed'])}); "
                             f"their errors are in {self.report / 'summary.md'}")


@dataclass
class JobsRunCommand:
    """Personalize every actor of a manifest, one Ray task per actor, here or on a Ray cluster.

    Each actor becomes the bundle ROOT/NAME, as `talkface personalize VIDEO --actor ROOT/NAME` with
    its options makes it. Actors whose bundle is complete with the same settings are skipped; a job
    that crashes is retried (--retries), one whose input is bad (a corrupt video, no face) is not;
    the others go on, and the command exits non-zero at the end if any actor failed. Status,
    attempts, durations (total and per stage), stage metrics and errors per actor are in
    ROOT/jobs.json, rewritten as each actor finishes. Interrupted (Ctrl-C, a killed machine)? Rerun
    the same command: finished actors are skipped, unfinished ones resume at their first unfinished
    stage. Without --address a local Ray instance uses this machine's CPUs (and GPUs); with the
    address of a Ray cluster (`ray start --head` on one node, `ray start --address HEAD:6379` on the
    others, talkface installed on all) the jobs spread over its nodes, one GPU each where the
    cluster has GPUs; the videos and ROOT must then be on a filesystem every node sees.

    MANIFEST in YAML: `actors`, a list with a `name` (the bundle's folder name) and a `video` per
    actor plus any option of `talkface personalize` (with underscores: refine_steps); `defaults`
    apply to every actor; relative paths are relative to the manifest's folder; `end` may be a
    percentage of the video; `heldout` (for `talkface evaluate --batch`) is not used here:

        defaults: {refine_steps: 500, end: 70%}
        actors:
          - {name: aoc, video: clips/hdtf_aoc_8s.mp4}
          - {name: katie, video: clips/hdtf_katie_8s.mp4, seed: 1, device: cpu}

    or in CSV (.csv): a header row, then a row per actor; an empty cell takes the default:

        name,video,refine_steps,seed
        aoc,clips/hdtf_aoc_8s.mp4,500,
        katie,clips/hdtf_katie_8s.mp4,,1
    """

    manifest: Path = field(metadata=option("job manifest, .yaml/.yml or .csv (format above)", positional=True))
    root: Path = field(default=Path("out/actors"), metadata=option(
        "directory of the actor bundles (ROOT/NAME) and of the summary ROOT/jobs.json"))
    address: str | None = field(default=JobsConfig.address, metadata=option(
        "Ray cluster to run on: HOST:PORT of its head, ray://HOST:10001, or auto (the one `ray start` made here); "
        "none: a new local Ray instance on this machine"))
    device: DeviceName = field(default=JobsConfig.device, metadata=option(
        "where each job runs torch (an actor's `device` in the manifest wins)"))
    retries: int = field(default=JobsConfig.retries, metadata=option("reruns of a job that failed other than on its input"))
    cpus_per_job: int = field(default=JobsConfig.cpus_per_job, metadata=option(
        "CPUs reserved for each job and torch threads in it (jobs run side by side on the rest)"))
    gpus_per_job: float = field(default=JobsConfig.gpus_per_job, metadata=option(
        "GPUs each job asks for when the cluster has GPUs (0.5: two jobs share one)"))

    def main(self, progress: bool = True) -> None:
        config = JobsConfig(retries=self.retries, address=self.address, device=self.device,
                            cpus_per_job=self.cpus_per_job, gpus_per_job=self.gpus_per_job)
        run_jobs(self.manifest, self.root, config, progress)


COMMANDS = {
    "track": TrackCommand,
    "reconstruct": ReconstructCommand,
    "personalize": PersonalizeCommand,
    "generate": GenerateCommand,
    "speak": SpeakCommand,
    "evaluate": EvaluateCommand,
    "pretrain": {"recon": PretrainReconCommand, "audio2pose": PretrainAudio2PoseCommand,
                 "refine": PretrainRefineCommand},
    "jobs": {"run": JobsRunCommand},
}
