"""The actor bundle: everything `personalize` learns about one actor, in one directory, and
reading it back (`Actor`).

    ACTOR/manifest.json     what is here (validated against `MANIFEST_SCHEMA`, with a checksum of itself)
    ACTOR/<stage files>     written by the stages (`STAGE_FILES`), each listed in the manifest with its SHA-256

The manifest records the source video's hash, the toolkit version, the settings, and per stage
its input fingerprint, output files (size and SHA-256), metrics and duration. Stages are
resumable: a stage whose fingerprint matches and whose files are intact is skipped; anything else
reruns. Files are written under temporary names and renamed, and the manifest is rewritten only
after a stage's files are complete, so a killed job leaves either a finished stage or none.

Generation reads a bundle through files it opened and checked once, at load (`Actor.load`): a
`personalize --overwrite` or a rerun stage meanwhile renames new files into place, and the open
ones still hold what was checked, so one output never mixes two bundles.

Bundles get shared between people, so opening one never runs code from it: the manifest is JSON
checked against a schema and its checksum (a hand-edited setting would change what the stages'
files mean, unseen), arrays are read with `np.load(allow_pickle=False)` and weights with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import cv2
import jsonschema
import numpy as np

from audio2pose.articulation import MouthShapes
from audio2pose.model import AudioToPose
from audio2pose.voice import VoiceModel
from personalize import toolkit_version
from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.facemodels import load_face_model
from recon3d.reconstruct import Reconstruction
from recon3d.track import FaceTrack
from recon3d.video import atomic_path
from refine.actor import ActorRefiner

BUNDLE_FORMAT_VERSION = 2
"""2: the manifest holds its checksum (format 1, without one, is still read)."""
MANIFEST_NAME = "manifest.json"
LOG_NAME = "personalize.log"
FRAMES, TRACK, FIT, COEFFS = "frames.zip", "track.npz", "fit.npz", "coeffs.npz"
AUDIO2POSE, VOICE, REFINER, MOUTH = "audio2pose.pt", "voice.npz", "refine.pt", "mouth.npz"
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "ingest": (FRAMES,),
    "track": (TRACK,),
    "reconstruct": (FIT,),
    "albedo": (COEFFS,),
    "audio2pose": (AUDIO2POSE,),
    "voice": (VOICE,),
    "refine": (REFINER,),
    "articulation": (MOUTH,),
}
"""The stages in order, with the files each may write (those it wrote are recorded)."""
STAGES = tuple(STAGE_FILES)
REFINE_WORK = "refine-training"
"""Where the refine stage keeps its checkpoint (resumable) and sample grids; not a bundle file."""

_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "talkface actor bundle manifest",
    "type": "object",
    "required": ["format", "format_version", "toolkit_version", "created", "source", "settings", "stages"],
    "if": {"properties": {"format_version": {"minimum": 2}}},
    "then": {"required": ["checksum"]},
    "additionalProperties": False,
    "properties": {
        "format": {"const": "talkface-actor"},
        "format_version": {"type": "integer", "minimum": 1},
        "checksum": _SHA256,
        "toolkit_version": {"type": "string"},
        "created": {"type": "string"},
        "source": {
            "type": "object",
            "required": ["name", "sha256", "bytes"],
            "properties": {
                "name": {"type": "string"},
                "path": {"type": "string"},
                "sha256": _SHA256,
                "bytes": {"type": "integer", "minimum": 0},
            },
        },
        "settings": {"type": "object"},
        "stages": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["fingerprint", "files", "metrics", "seconds", "finished"],
                "additionalProperties": False,
                "properties": {
                    "fingerprint": _SHA256,
                    "files": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["sha256", "bytes"],
                            "additionalProperties": False,
                            "properties": {"sha256": _SHA256, "bytes": {"type": "integer", "minimum": 0}},
                        },
                    },
                    "metrics": {"type": "object"},
                    "seconds": {"type": "number", "minimum": 0},
                    "finished": {"type": "string"},
                },
            },
        },
    },
}
"""JSON Schema of `manifest.json` (format version 2). File names are relative to the bundle and
may not leave it; `checksum` is `manifest_checksum` of the rest."""


def file_sha256(path: str | os.PathLike | BinaryIO) -> str:
    """SHA-256 of a file, by path or through an open binary file (read from its start, left at its end)."""
    digest = hashlib.sha256()
    with contextlib.nullcontext(path) if hasattr(path, "read") else open(path, "rb") as f:
        f.seek(0)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(inputs: dict) -> str:
    """SHA-256 of a stage's inputs (settings, upstream fingerprints) as canonical JSON."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def manifest_checksum(manifest: dict) -> str:
    """The fingerprint of a manifest's contents, its checksum left out."""
    return fingerprint({key: value for key, value in manifest.items() if key != "checksum"})


class AnotherVideoError(InputError):
    """The bundle at an --actor path is of another video than the one given (`ActorBundle.resumable`)."""

    def __init__(self, root: Path, video_name: str):
        super().__init__(
            f"--actor {root}: already the actor bundle of another video ({video_name}); "
            "give another --actor, or add --overwrite to replace it"
        )
        self.root, self.video_name = root, video_name


def personalize_hint(root: Path, manifest: dict | None = None, overwrite: bool = True) -> str:
    """The command that makes the bundle at `root` again (its source video's path when known)."""
    video = shlex.quote(manifest["source"]["path"]) if manifest else "VIDEO"
    return f"talkface personalize {video} --actor {shlex.quote(str(root))}" + (" --overwrite" if overwrite else "")


@dataclass
class ActorBundle:
    """An actor bundle directory and its manifest (a plain dict matching `MANIFEST_SCHEMA`)."""

    root: Path
    manifest: dict
    opened: dict[str, BinaryIO] = field(default_factory=dict, repr=False)
    """The files `open_files` opened and checked, by name: `reading` reads these."""

    @classmethod
    def resumable(cls, root: str | os.PathLike, source_sha256: str, overwrite: bool = False) -> ActorBundle | None:
        """The existing bundle at `root` that personalizing the video with this hash resumes, read
        only; None where there is none, or it is to be replaced (`overwrite`). Refuses a bundle of
        another video: its finished stages would be lost."""
        root = Path(root)
        if overwrite or not (root / MANIFEST_NAME).exists():
            return None
        bundle = cls.open(root, verify_files=False)
        if bundle.manifest["source"]["sha256"] != source_sha256:
            raise AnotherVideoError(root, bundle.manifest["source"]["name"])
        return bundle

    @classmethod
    def create(
        cls, root: str | os.PathLike, source: str | os.PathLike, settings: dict, overwrite: bool = False
    ) -> ActorBundle:
        """The bundle for `source` at `root`: a new one, or the existing one of the same source
        video (same hash) to resume; with `overwrite`, whatever bundle is there is replaced (its
        files removed). Refuses the bundle of another video otherwise (`resumable`)."""
        root, source = Path(root), Path(source)
        # The path lets `talkface evaluate --start` find the video's unseen tail again.
        record = {
            "name": source.name,
            "path": str(source.resolve()),
            "sha256": file_sha256(source),
            "bytes": source.stat().st_size,
        }
        bundle = cls.resumable(root, record["sha256"], overwrite)
        if bundle is not None:
            bundle.manifest.update(source=record, settings=settings, toolkit_version=toolkit_version())
        else:
            remove_bundle_files(root)
            bundle = cls(
                root,
                {
                    "format": "talkface-actor",
                    "format_version": BUNDLE_FORMAT_VERSION,
                    "toolkit_version": toolkit_version(),
                    "created": _now(),
                    "source": record,
                    "settings": settings,
                    "stages": {},
                },
            )
        bundle.write_manifest()
        return bundle

    @classmethod
    def open(cls, root: str | os.PathLike, verify_files: bool = True) -> ActorBundle:
        """An existing bundle, its manifest validated; with `verify_files`, every listed file must
        have its recorded size and hash (a partial copy or a corrupt file is reported, never used)."""
        root = Path(root)
        path = root / MANIFEST_NAME
        if not root.is_dir():
            raise InputError(f"{root}: no such actor bundle; make one with `talkface personalize VIDEO --actor {root}`")
        if not path.is_file():
            raise InputError(f"{root}: not an actor bundle (no {MANIFEST_NAME}); make one with `talkface personalize`")
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: corrupt manifest ({e}); rerun `{personalize_hint(root)}`") from None
        try:
            jsonschema.validate(manifest, MANIFEST_SCHEMA)
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "top level"
            raise InputError(
                f"{path}: invalid manifest at {where}: {e.message}; rerun `{personalize_hint(root)}`"
            ) from None
        if manifest["format_version"] > BUNDLE_FORMAT_VERSION:
            raise InputError(
                f"{root}: bundle format {manifest['format_version']} was made by a newer talkface "
                f"({manifest['toolkit_version']}); this one ({toolkit_version()}) reads format "
                f"{BUNDLE_FORMAT_VERSION}: upgrade talkface"
            )
        if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
            raise InputError(
                f"{path}: edited or damaged since talkface wrote it (its checksum does not match); restore it, "
                f"or rerun `{personalize_hint(root, manifest)}`"
            )
        bundle = cls(root, manifest)
        for stage in manifest["stages"].values():
            for name in stage["files"]:
                bundle.path(name)  # refuses names that leave the bundle
        if verify_files:
            bundle.verify()
        return bundle

    def path(self, name: str) -> Path:
        """The bundle file `name` (relative; may not leave the bundle)."""
        path = (self.root / name).resolve()
        if Path(name).is_absolute() or not path.is_relative_to(self.root.resolve()):
            raise InputError(
                f"{self.root / MANIFEST_NAME}: file {name!r} lies outside the bundle; the bundle is not usable"
            )
        return path

    def verify(self, stages: list[str] | None = None) -> None:
        """Raises InputError naming the first listed file that is missing or changed."""
        for stage_name, name, record in self._listed(stages):
            self._check(stage_name, name, self._file_problem(name, record))

    def open_files(self) -> None:
        """Opens every listed file into `opened`, each checked (size, hash) through the open file
        itself: what is read from them later is what was checked, whatever replaces the files on
        disk meanwhile. Raises InputError naming the first missing or changed one."""
        for stage_name, name, record in self._listed():
            path = self.path(name)
            try:
                handle = open(path, "rb")
            except (FileNotFoundError, IsADirectoryError):
                self._check(stage_name, name, "missing")
            self.opened[name] = handle
            self._check(stage_name, name, self._file_problem(name, record, handle))

    def _listed(self, stages: list[str] | None = None) -> Iterator[tuple[str, str, dict]]:
        """(stage, file name, its record) of every file the manifest lists (of `stages` only)."""
        for stage_name, stage in self.manifest["stages"].items():
            if stages is None or stage_name in stages:
                for name, record in stage["files"].items():
                    yield stage_name, name, record

    def _check(self, stage: str, name: str, problem: str | None) -> None:
        if problem:
            raise InputError(
                f"{self.root}: {name} (stage {stage}) is {problem}; the bundle is partial or "
                "corrupt: rerun `talkface personalize` to redo that stage"
            )

    def _file_problem(self, name: str, record: dict, handle: BinaryIO | None = None) -> str | None:
        path = self.path(name)
        if handle is None and not path.is_file():
            return "missing"
        size = os.fstat(handle.fileno()).st_size if handle is not None else path.stat().st_size
        if size != record["bytes"] or file_sha256(handle or path) != record["sha256"]:
            return "changed since it was written"
        return None

    def is_done(self, stage: str, inputs: dict) -> bool:
        """Whether `stage` finished with these inputs and its files are intact (then skip it)."""
        record = self.manifest["stages"].get(stage)
        if record is None or record["fingerprint"] != fingerprint(inputs):
            return False
        return all(self._file_problem(name, file) is None for name, file in record["files"].items())

    def record(self, stage: str, inputs: dict, files: list[str], metrics: dict, seconds: float) -> None:
        """Marks `stage` finished: its (already complete) files, metrics and duration."""
        self.manifest["stages"][stage] = {
            "fingerprint": fingerprint(inputs),
            "files": {
                name: {"sha256": file_sha256(self.path(name)), "bytes": self.path(name).stat().st_size}
                for name in files
            },
            "metrics": metrics,
            "seconds": round(float(seconds), 3),
            "finished": _now(),
        }
        self.write_manifest()

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[BinaryIO]:
        """The bundle file `name` as `open_files` opened and checked it, from its start; a file
        that does not read back is one line saying the bundle is corrupt and how to make it again
        (the loaders' own hints name the commands that write such files outside a bundle)."""
        handle = self.opened[name]
        handle.seek(0)
        try:
            yield handle
        except InputError as err:
            detail = str(err).removeprefix(f"{handle}: ").rsplit("; ", 1)[0]
            raise self._corrupt(name, detail) from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise self._corrupt(name, str(err).splitlines()[0] or type(err).__name__) from None

    def _corrupt(self, name: str, detail: str) -> InputError:
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        return InputError(
            f"{self.root}: the bundle file {name} is corrupt ({detail}); make the bundle again: "
            f"`{personalize_hint(self.root, self.manifest)}`"
        )

    def forget(self, stage: str) -> None:
        """Drops a stage's record (it will rerun); its files stay until overwritten."""
        if self.manifest["stages"].pop(stage, None) is not None:
            self.write_manifest()

    def write_manifest(self) -> None:
        self.manifest["format_version"] = BUNDLE_FORMAT_VERSION  # a format 1 bundle resumed gets its checksum
        self.manifest["checksum"] = manifest_checksum(self.manifest)
        jsonschema.validate(self.manifest, MANIFEST_SCHEMA)
        with atomic_path(self.root / MANIFEST_NAME) as tmp:
            tmp.write_text(json.dumps(self.manifest, indent=1, sort_keys=True) + "\n")


def bundle_files(root: Path) -> list[Path]:
    """What `personalize` writes into a bundle directory (the files of every stage, the manifest,
    the log, the refine stage's work folder), whether or not it is there now."""
    names = [MANIFEST_NAME, LOG_NAME, REFINE_WORK, *(name for files in STAGE_FILES.values() for name in files)]
    return [root / name for name in names]


def remove_bundle_files(root: Path) -> None:
    """Removes `bundle_files` (and only those: the directory may hold the user's own files too)."""
    for path in bundle_files(root):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def frame_name(index: int) -> str:
    return f"{index:06d}.jpg"


@dataclass
class Actor:
    """A finished actor bundle, loaded for generation."""

    bundle: ActorBundle
    recon: Reconstruction
    audio2pose: AudioToPose
    face_model: FaceModel
    voice: VoiceModel
    refiner: ActorRefiner | None
    """None for an actor without refinement (a photo, or made with 0 refine steps)."""
    mouth: MouthShapes

    @property
    def is_photo(self) -> bool:
        return bool(self.bundle.manifest["settings"].get("photo"))

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the actor's video."""
        return self.recon.crop.frame_width, self.recon.crop.frame_height

    @classmethod
    def load(cls, root: str | os.PathLike, face_model: str | None = None) -> Actor:
        """Opens and checks the bundle (schema, every file's hash, every stage finished) and loads
        it; what is read later (frames, the track) comes from the files opened and checked now
        (`ActorBundle.open_files`). The face model is the one the bundle was made with, found by
        its recorded spec, unless `face_model` names where it is now."""
        bundle = ActorBundle.open(root, verify_files=False)
        missing = [name for name in STAGES if name not in bundle.manifest["stages"]]
        if missing:
            raise InputError(
                f"{bundle.root}: the actor bundle is unfinished (stage {missing[0]} did not complete); "
                "rerun `talkface personalize` with the same video and --actor to finish it"
            )
        bundle.open_files()
        settings = bundle.manifest["settings"]
        model = load_face_model(face_model or settings["face_model"])
        if face_model is None and model.name != settings["face_model_name"] == load_face_model("builtin").name:
            # Made where "default" meant the built-in model; ICT-FaceKit was installed since.
            model = load_face_model("builtin")
        if (model.name, model.num_vertices) != (settings["face_model_name"], settings["face_model_vertices"]):
            raise InputError(
                f"{bundle.root}: made with face model {settings['face_model_name']} "
                f"({settings['face_model_vertices']} vertices), found {model.name}; "
                "pass --face-model pointing at the one it was made with"
            )
        with bundle.reading(COEFFS) as file:
            recon = Reconstruction.load(file)
        with bundle.reading(AUDIO2POSE) as file:
            network = AudioToPose.load(file, model.name).eval()
        refiner = None
        if REFINER in bundle.manifest["stages"]["refine"]["files"]:
            with bundle.reading(REFINER) as file:
                refiner = ActorRefiner.load(file)
        with bundle.reading(VOICE) as file:
            voice = VoiceModel.load(file)
        with bundle.reading(MOUTH) as file:
            mouth = MouthShapes.load(file)
        return cls(bundle, recon, network, model, voice, refiner, mouth)

    def track(self) -> FaceTrack:
        """The landmarks tracked in the actor's frames (the track stage's)."""
        with self.bundle.reading(TRACK) as file:
            return FaceTrack.load(file)

    @contextlib.contextmanager
    def frames(self) -> Iterator[BackgroundFrames]:
        # Only the archive's own errors are the bundle's: the block's (writing the output) are not.
        with self.bundle.reading(FRAMES) as file:
            archive = zipfile.ZipFile(file)
        with archive:
            yield BackgroundFrames(archive, self.bundle)


class BackgroundFrames:
    """Random access to the actor's 25 fps frames (decoded on demand, the last few cached)."""

    def __init__(self, archive: zipfile.ZipFile, bundle: ActorBundle, cache: int = 32) -> None:
        self.archive = archive
        self.bundle = bundle
        self.count = len(archive.namelist())
        self._cache: dict[int, np.ndarray] = {}
        self._cache_size = cache

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> np.ndarray:
        frame = self._cache.get(index)
        if frame is None:
            with self.bundle.reading(FRAMES):
                data = np.frombuffer(self.archive.read(frame_name(index)), np.uint8)
                image = cv2.imdecode(data, cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"frame {index} is not a readable JPEG")
            frame = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = frame
        return frame
