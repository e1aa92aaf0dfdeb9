"""The `talkface` subcommands, one dataclass each: fields are the options, `main` runs it."""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile

from audio2pose.train import PretrainAudio2PoseConfig, pretrain_audio2pose
from personalize.bundle import Actor
from personalize.evaluate import EvaluateConfig, evaluate, evaluate_batch
from personalize.generate import GenerateConfig, generate
from personalize.jobs import JOBS_OPTIONS, JobsConfig, run_jobs
from personalize.manifest import read_manifest
from personalize.options import (
    PERSONALIZE_PRESETS,
    PresetName,
    apply_options,
    field_docs,
    manifest_options,
    personalize_config,
    settings_field,
)
from personalize.pipeline import PersonalizeConfig, personalize
from personalize.samples import sample_photo, sample_speech
from personalize.speech import read_text, say_text
from recon3d.corpus import CorpusCache
from recon3d.device import DeviceName, resolve_device
from recon3d.distributed import torchrun_world
from recon3d.errors import InputError
from recon3d.export import export_track
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.pretrain import PretrainReconConfig, RegressorTrainer
from recon3d.reconstruct import export_reconstruction, reconstruct_clip
from recon3d.regressor import CoeffRegressor
from recon3d.track import TrackConfig, track_video
from recon3d.video import AUDIO_RATE, atomic_path, check_output
from refine.actor import ACTOR_REFINE, CORPUS_REFINE, GPU_REFINE_SIZE
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
    settings: dict = settings_field(TrackConfig)
    preview: bool = field(default=True, metadata=option("write the preview with landmarks drawn"))

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: tracking %s", video)
        check_output(self.output, folder=True)
        config = apply_options(TrackConfig(), self.settings)
        track = track_video(video, config, progress=progress)
        paths = export_track(video, track, self.output, preview=self.preview, progress=progress)
        log.info(
            "%d frames, face found in %d (%.1f%%), confidence min %.2f mean %.2f; crop %.0f px square at (%.0f, %.0f)",
            track.num_frames,
            track.detected.sum(),
            100 * track.detected.mean(),
            track.confidence.min(),
            track.confidence.mean(),
            track.crop.side,
            track.crop.x0,
            track.crop.y0,
        )
        for path in paths:
            log.info("wrote %s", path)


FACE_MODEL_HELP = (
    "face model: 'default' (ICT-FaceKit if installed, see docs/design.md, else the built-in one), 'ict', 'builtin', "
    "a FaceXModel folder, a BFM_model_front.mat or a converted .npz"
)


@dataclass
class ReconstructCommand:
    """Fit the 3D face model to every frame of a video: coefficients, albedo, an overlay to check.

    Writes OUTPUT/coeffs.npz (per-frame coefficients in the face model's layout, camera, crop,
    per-vertex albedo, per-frame landmark error and PSNR; see docs/commands.md), OUTPUT/overlay.mp4 (the
    fitted face rendered over the frames, with the audio) and OUTPUT/face.ply and face.glb (the fitted
    face at a neutral expression with its albedo, for a mesh viewer).
    """

    video: Path | None = field(
        default=None,
        metadata=option("video or photo with one face (default: scikit-image's astronaut photo)", positional=True),
    )
    output: Path = field(default=Path("out/reconstruct"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    regressor: Path | None = field(
        default=None,
        metadata=option("coefficient regressor checkpoint (from `talkface pretrain recon`) to start the fit from"),
    )
    settings: dict = settings_field(FitConfig)
    crop_size: int = field(default=TrackConfig.crop_size, metadata=option(field_docs(TrackConfig)["crop_size"]))
    overlay: bool = field(default=True, metadata=option("write the overlay video"))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: reconstructing %s", video)
        check_output(self.output, folder=True)
        device = resolve_device(self.device)
        model = load_face_model(self.face_model)
        log.info("face model %s: %d vertices, %d coefficients", model.name, model.num_vertices, model.layout.total)
        start = time.perf_counter()
        track = track_video(video, TrackConfig(crop_size=self.crop_size), progress=progress)
        regressor = None if self.regressor is None else CoeffRegressor.load(self.regressor, model).to(device)
        config = apply_options(FitConfig(), self.settings)
        recon, _ = reconstruct_clip(
            video, model, config, track=track, device=device, regressor=regressor, progress=progress
        )
        elapsed = time.perf_counter() - start
        log.info(
            "%d frames in %.1f s (%.1f frames/s): landmark error %.2f%% of the eye distance, skin PSNR %.1f dB",
            recon.num_frames,
            elapsed,
            recon.num_frames / elapsed,
            100 * recon.landmark_error.mean(),
            recon.psnr.mean(),
        )
        for path in export_reconstruction(video, recon, model, self.output, self.overlay, device, progress):
            log.info("wrote %s", path)


CORPUS_CACHE_HELP = (
    "corpus cache: each clip's track and reconstructions, made once and shared by the pretrainers "
    "(default: $TALKFACE_HOME/corpus; safe to delete)"
)


@dataclass
class PretrainReconCommand:
    """Train the coefficient regressor from scratch on a folder of talking-head clips.

    Weakly supervised with the fitting's losses (landmarks, skin photometric error, priors); the
    last 10% of each clip is held out. Writes OUTPUT/regressor.pt every epoch (rerun to resume);
    the clips' tracks go into the corpus cache (--cache).
    """

    corpus: Path = field(metadata=option("folder of talking-head videos"))
    output: Path = field(default=Path("out/pretrain/recon"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    settings: dict = settings_field(PretrainReconConfig)
    cache: Path | None = field(default=None, metadata=option(CORPUS_CACHE_HELP))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        model = load_face_model(self.face_model)
        config = apply_options(PretrainReconConfig(), self.settings)
        with torchrun_world(resolve_device(self.device)) as (world, device):
            result = RegressorTrainer(model, config, device, world).train(
                self.corpus, self.output, progress and world.is_main, CorpusCache(self.cache)
            )
            log.info(
                "wrote %s (held-out landmark error %.2f%%)",
                self.output / "regressor.pt",
                100 * result.get("val_landmark_error", float("nan")),
            )


@dataclass
class PretrainAudio2PoseCommand:
    """Train the general audio -> expression + head pose network on a folder of talking-head clips.

    Each clip is reconstructed first (into the corpus cache, --cache, so a rerun skips it); its
    expression and pose become the targets of its own soundtrack's MFCCs. The last
    --val-fraction of every clip is held out and its loss logged. Writes OUTPUT/audio2pose.pt
    (rerun to resume) and the loss curves in OUTPUT/history.csv.
    """

    corpus: Path = field(metadata=option("folder of talking-head videos"))
    output: Path = field(default=Path("out/pretrain/audio2pose"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    settings: dict = settings_field(PretrainAudio2PoseConfig)
    cache: Path | None = field(default=None, metadata=option(CORPUS_CACHE_HELP))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        model = load_face_model(self.face_model)
        config = apply_options(PretrainAudio2PoseConfig(), self.settings)
        with torchrun_world(resolve_device(self.device)) as (world, device):
            result = pretrain_audio2pose(
                self.corpus,
                self.output,
                model,
                config,
                device,
                progress and world.is_main,
                world,
                CorpusCache(self.cache),
            )
            log.info(
                "wrote %s (held-out loss %.4g)", self.output / "audio2pose.pt", result.get("val_total", float("nan"))
            )


@dataclass
class PretrainRefineCommand:
    """Train the general refinement GAN (memory-augmented, Yi et al.) on a folder of talking-head clips.

    Each clip is tracked, reconstructed and rendered from its own coefficients once (into the
    corpus cache, --cache); the GAN learns to turn the renders into the real frames. The last
    --val-fraction of every clip is held out and its face-crop PSNR (raw render and refined)
    logged at each checkpoint. Writes OUTPUT/refiner.pt (for `talkface personalize
    --refine-init`), the training checkpoint (rerun to resume, with more --steps to go on) and
    sample grids in OUTPUT/samples.
    """

    corpus: Path = field(metadata=option("folder of talking-head videos"))
    output: Path = field(default=Path("out/pretrain/refine"), metadata=option("output directory", "-o", "--output"))
    face_model: str = field(default="default", metadata=option(FACE_MODEL_HELP))
    settings: dict = settings_field(RefineTrainConfig, defaults={"": CORPUS_REFINE})
    size: int | None = field(
        default=None,
        metadata=option(
            f"side of the face images, a power of two (default: {ACTOR_REFINE.network.size} on a CPU, "
            f"{GPU_REFINE_SIZE} "
            "on a GPU; personalize's --refine-size must match)"
        ),
    )
    val_fraction: float = field(default=0.3, metadata=option("tail of each clip held out"))
    cache: Path | None = field(default=None, metadata=option(CORPUS_CACHE_HELP))
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        with torchrun_world(resolve_device(self.device)) as (world, device):
            config = dataclasses.replace(
                apply_options(CORPUS_REFINE, self.settings), network=refine_network(self.size, device, "--size")
            )
            _, history = pretrain_refiner(
                self.corpus,
                self.output,
                load_face_model(self.face_model),
                config,
                val_fraction=self.val_fraction,
                device=device,
                progress=progress and world.is_main,
                world=world,
                cache=CorpusCache(self.cache),
            )
            last = history[-1]
            log.info(
                "wrote %s (held-out face-crop PSNR %.2f dB, raw render %.2f dB)",
                self.output / "refiner.pt",
                last.get("held_out_psnr", float("nan")),
                last.get("held_out_raw_psnr", float("nan")),
            )


PRESET_HELP = (
    "settings preset: cpu, gpu (the refinement GAN at twice the side) or tiny (seconds; smoke tests); "
    "auto: gpu on a CUDA device, else cpu"
)


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

    Runs the stages ingest, track, reconstruct, albedo, audio2pose, voice, refine and articulation
    into the actor bundle ACTOR (a directory; see docs/commands.md, "Actor bundles"). Rerunning skips the
    stages that finished with the same inputs, so an interrupted job resumes. A photo is a
    one-shot actor: its head motion and expression come from the general audio2pose model
    (scripts/setup.sh trains the built-in face model's from a corpus of talking-head clips). The
    voice stage matches a Flite voice to the actor's speech for text input (CMU Flite must be
    installed). The settings start from --preset; each option below overrides its field. The log
    is kept in ACTOR/personalize.log. The bundle of another video is refused unless --overwrite;
    a refused run (no face, a bad setting) writes nothing.
    """

    video: Path | None = field(
        default=None,
        metadata=option(
            "video of the actor speaking (>= 2 s, one face), or a photo (default: scikit-image's astronaut photo)",
            positional=True,
        ),
    )
    actor: Path = field(default=Path("out/actor"), metadata=option("actor bundle directory to write (or resume)"))
    preset: PresetName = field(default="auto", metadata=option(PRESET_HELP))
    settings: dict = settings_field(PersonalizeConfig, defaults=PERSONALIZE_PRESETS)
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))
    overwrite: bool = field(
        default=False,
        metadata=option(
            "replace the bundle at --actor (its files; every stage reruns): needed to personalize another "
            "video into it, or to remake a corrupt one"
        ),
    )

    def config(self, device: torch.device) -> PersonalizeConfig:
        """The settings these options give on `device` (the "auto" preset depends on it)."""
        return personalize_config(self.preset, device, **self.settings)

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: a one-shot actor from %s", video)
        device = resolve_device(self.device)
        config = self.config(device)
        start = time.perf_counter()
        bundle = personalize(video, self.actor, config, device, progress, self.overwrite)
        log.info(
            "actor bundle %s ready in %.1f s; next: talkface generate --actor %s --audio SPEECH.wav -o OUT.mp4",
            bundle.root,
            time.perf_counter() - start,
            shlex.quote(str(bundle.root)),  # a command to paste: a path with spaces stays one argument
        )


TEXT_HELP = "text to say, in English (numbers, punctuation and any length are fine)"
TEXT_FILE_HELP = "UTF-8 text file to say"
TTS_COMMAND_HELP = (
    "your own speech engine (e.g. a neural voice-cloning one) instead of the matched Flite voice: a "
    "command line with {text} (a file with one sentence), {wav} (where it writes its audio) and "
    "optionally {reference} (a wav of the actor's speech)"
)


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
    audio: Path | None = field(
        default=None,
        metadata=option("speech to say: a wav or any audio/video file (default: pysptk's CMU ARCTIC sample)"),
    )
    text: str | None = field(default=None, metadata=option(TEXT_HELP + ", instead of --audio"))
    text_file: Path | None = field(default=None, metadata=option(TEXT_FILE_HELP + ", instead of --audio"))
    tts_command: str | None = field(default=None, metadata=option(TTS_COMMAND_HELP))
    output: Path = field(default=Path("out/generated.mp4"), metadata=option("output video (.mp4)", "-o", "--output"))
    transcript: str | None = field(
        default=None,
        metadata=option(
            "the words said in --audio, to align the mouth's phones to (default: the words are recognised)"
        ),
    )
    settings: dict = settings_field(GenerateConfig)
    face_model: str | None = field(
        default=None,
        metadata=option("where the bundle's face model is now (default: where it was when the bundle was made)"),
    )
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        text = read_text(self.text, self.text_file)
        if text is not None and self.audio is not None:
            raise InputError("give the speech as --audio or as text (--text, --text-file), not both")
        if text is not None and self.transcript is not None:
            raise InputError("--transcript is for --audio: text input is spoken with its own phone timings")
        check_output(self.output, ".mp4", [self.audio, self.text_file, self.actor])  # before the text is said
        actor = Actor.load(self.actor, self.face_model)
        config = apply_options(GenerateConfig(), self.settings)
        if text is not None:
            audio = say_text(actor, text, self.tts_command, progress, config.max_seconds)
        else:
            audio = self.audio
            if audio is None:
                audio = sample_speech()
                log.info("no --audio given: saying %s", audio)
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
        check_output(self.output, ".wav", [self.text_file, self.actor])
        speech = say_text(Actor.load(self.actor), text, self.tts_command, progress).audio
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
    identity, and with --text the voice (see docs/commands.md). With --batch MANIFEST --actors ROOT, every
    actor of the manifest is evaluated into REPORT/<name>/ (finished reports are kept) and the
    mean, min and max of every metric go into REPORT/summary.{json,md,html}.
    """

    actor: Path | None = field(default=None, metadata=option("actor bundle to evaluate"))
    video: Path | None = field(default=None, metadata=option("held-out video of the actor speaking"))
    start: float | None = field(
        default=None,
        metadata=option(
            "evaluate on the actor's own video from this time on (seconds; default: its --end)", metavar="SECONDS"
        ),
    )
    report: Path = field(default=Path("out/report"), metadata=option("report folder to write"))
    text: str | None = field(
        default=None,
        metadata=option(
            "say this text in the actor's voice instead of the held-out speech (adds the voice's speaker similarity)"
        ),
    )
    batch: Path | None = field(
        default=None,
        metadata=option("manifest of actors (YAML or CSV, as for `talkface jobs run`) to evaluate each of"),
    )
    actors: Path | None = field(default=None, metadata=option("folder of the manifest's actor bundles (ROOT/<name>)"))
    settings: dict = settings_field(EvaluateConfig)
    device: DeviceName = field(default="auto", metadata=option("where torch runs"))

    def main(self, progress: bool = True) -> None:
        config = apply_options(EvaluateConfig(), self.settings)
        if self.batch is None:
            if self.actor is None or self.actors is not None:
                raise InputError("give --actor DIR (with --video or --start), or --batch MANIFEST --actors ROOT")
            evaluate(
                self.actor,
                self.report,
                self.video,
                self.start,
                self.text,
                config,
                resolve_device(self.device),
                progress,
            )
            log.info("wrote %s", self.report / "report.html")
            return
        if self.actors is None or self.actor is not None or self.video is not None or self.start is not None:
            raise InputError(
                "--batch evaluates the manifest's actors: give --actors ROOT (the folder of their "
                "bundles), not --actor, --video or --start"
            )
        entries = read_manifest(self.batch, manifest_options())
        summary = evaluate_batch(
            entries, self.actors, self.report, self.text, config, resolve_device(self.device), progress
        )
        log.info("wrote %s", self.report / "summary.html")
        if summary["failed"]:
            raise InputError(
                f"{len(summary['failed'])} of {len(entries)} actors failed ({', '.join(summary['failed'])}); "
                f"their errors are in {self.report / 'summary.md'}"
            )


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
    root: Path = field(
        default=Path("out/actors"),
        metadata=option("directory of the actor bundles (ROOT/NAME) and of the summary ROOT/jobs.json"),
    )
    settings: dict = settings_field(JobsConfig, JOBS_OPTIONS)

    def main(self, progress: bool = True) -> None:
        config = apply_options(JobsConfig(), self.settings, JOBS_OPTIONS)
        run_jobs(self.manifest, self.root, config, progress)


COMMANDS = {
    "track": TrackCommand,
    "reconstruct": ReconstructCommand,
    "personalize": PersonalizeCommand,
    "generate": GenerateCommand,
    "speak": SpeakCommand,
    "evaluate": EvaluateCommand,
    "pretrain": {
        "recon": PretrainReconCommand,
        "audio2pose": PretrainAudio2PoseCommand,
        "refine": PretrainRefineCommand,
    },
    "jobs": {"run": JobsRunCommand},
}
