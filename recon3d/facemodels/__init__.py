"""Face model loaders: `load_face_model(spec)` -> `recon3d.facemodel.FaceModel`.

Where the default face model is looked for: `$TALKFACE_FACE_MODEL` if set, else
`$TALKFACE_HOME/facemodels/ict-facekit/FaceXModel`, with `$TALKFACE_HOME` defaulting to
`~/.local/share/talkface`. ICT-FaceKit (MIT) is not shipped: download FaceXModel from
https://github.com/ICT-VGL/ICT-FaceKit and put it there (or point `$TALKFACE_FACE_MODEL` at it).
When nothing is there, the default is the built-in model, learned from mediapipe face meshes and
shipped with talkface (`recon3d.facemodels.builtin`).

Specs `load_face_model` accepts:
- None or "default": the model at the default location, else the built-in one;
- "ict": the model at the default location, which must exist;
- "builtin" or "mediapipe": the built-in model;
- a FaceXModel folder, or a folder holding one (e.g. the unpacked `ict-facekit/`);
- an archive of such a folder (.tar.xz, .tar.gz, .tgz, .tar, .zip);
- a Deep3DFaceRecon `BFM_model_front.mat` (BFM 2009, user-supplied; see `recon3d.facemodels.bfm`);
- a .npz written by `FaceModel.save`.
The keywords win over same-named relative paths (write ./ict for a folder named ict).
ICT folders and archives are converted once and cached in `$TALKFACE_HOME/cache` (~50 MB each).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import lzma
import os
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.facemodels.bfm import load_bfm
from recon3d.facemodels.builtin import build_mediapipe_face_model, load_builtin
from recon3d.facemodels.ict import CONVERTER_VERSION, ICT_URL, convert_ict, is_ict_folder, load_ict, missing_ict_message
from recon3d.facemodels.paths import cache_dir, default_face_model_path, talkface_home

log = logging.getLogger("talkface")

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar", ".zip")
ARCHIVE_HINT = (
    f"give the ICT-FaceKit archive as downloaded from {ICT_URL} (a .tar.xz, .tar.gz, .tgz, .tar or .zip "
    "holding FaceXModel) or its unpacked FaceXModel folder, or use --face-model builtin"
)
"""What to give instead of an archive that does not unpack."""
WRITE_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Errors unpacking that are the disk's (full, a quota, a file size limit), not the archive's."""
BUILTIN_NAMES = ("builtin", "mediapipe")

__all__ = [
    "build_mediapipe_face_model",
    "cache_dir",
    "convert_ict",
    "default_face_model_path",
    "load_bfm",
    "load_builtin",
    "load_face_model",
    "load_ict",
    "talkface_home",
]


def _find_ict_folder(root: Path, depth: int = 3) -> Path | None:
    """`root` itself or the shallowest folder below it that holds an ICT-FaceKit model."""
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if is_ict_folder(folder):
                return folder
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir())
    return None


def _load_archive(path: Path) -> FaceModel:
    """An archive of FaceXModel: unpacked to a temporary folder, converted, cached by the archive's
    identity and the converter's version."""
    stat = path.stat()
    key = f"{CONVERTER_VERSION} {path.resolve()} {stat.st_size} {stat.st_mtime_ns}"
    key = hashlib.sha1(key.encode()).hexdigest()[:16]
    cached = cache_dir() / f"ict-archive-{key}.npz"
    if cached.is_file():
        try:
            return FaceModel.load(cached)
        except InputError as err:
            log.warning("ignoring a broken face model cache: %s", err)
    cached.parent.mkdir(parents=True, exist_ok=True)
    log.info("unpacking and converting %s (once; cached in %s)", path, cached.parent)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".unpack-") as tmp:
        try:
            if path.name.endswith(".zip"):
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(tmp)
            else:
                try:
                    archive = tarfile.open(path)
                except tarfile.ReadError:  # its message lists each compression tried, a line each
                    raise ValueError("not a tar file, plain or compressed") from None
                with archive:
                    archive.extractall(tmp, filter="data")
        except OSError as err:
            if err.errno in WRITE_FULL:
                raise  # the machine's, not the archive's: the CLI says to free space
            raise InputError(f"{path}: cannot read the face model archive ({err.strerror}); {ARCHIVE_HINT}") from None
        except (EOFError, ValueError, tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, zlib.error) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise InputError(f"{path}: not a readable face model archive ({reason}); {ARCHIVE_HINT}") from None
        folder = _find_ict_folder(Path(tmp))
        if folder is None:
            raise InputError(f"{path}: no FaceXModel folder inside; {missing_ict_message(path)}")
        model = convert_ict(folder)
    model.info["folder"] = str(path.resolve())
    model.save(cached)
    return model


def _load_path(path: Path) -> FaceModel:
    if not path.exists():
        raise InputError(
            f"face model not found at {path}: give a FaceXModel folder (download it from {ICT_URL}, MIT), "
            "a BFM_model_front.mat or a converted .npz, or use --face-model builtin"
        )
    if path.is_dir():
        folder = _find_ict_folder(path, depth=1)
        if folder is not None:
            return load_ict(folder)
        if (path / "BFM_model_front.mat").is_file():
            return load_bfm(path / "BFM_model_front.mat")
        raise InputError(missing_ict_message(path))
    name = path.name.lower()
    if name.endswith(".npz"):
        return FaceModel.load(path)
    if name.endswith(".mat"):
        return load_bfm(path)
    if name.endswith(ARCHIVE_SUFFIXES):
        return _load_archive(path)
    raise InputError(
        f"{path}: not a face model (expected a FaceXModel folder or archive, a BFM_model_front.mat or a "
        "converted .npz); or use --face-model builtin"
    )


def load_face_model(spec: str | os.PathLike | None = None) -> FaceModel:
    """The face model named by `spec` (see the module docstring); InputError when it is missing or malformed."""
    if spec is None or str(spec) == "default":
        path = default_face_model_path()
        if path.exists() or os.environ.get("TALKFACE_FACE_MODEL"):
            return _load_path(path)  # an explicit $TALKFACE_FACE_MODEL that is missing is an error
        # Debug: said at INFO it came before every refusal's one line, about something else (personalize's
        # log names the face model it used).
        log.debug("no face model at %s; using the built-in one", path)
        return load_builtin()
    if str(spec) in BUILTIN_NAMES:
        return load_builtin()
    if str(spec) == "ict":
        path = default_face_model_path()
        if not path.exists():
            raise InputError(missing_ict_message(path))
        return _load_path(path)
    return _load_path(Path(spec).expanduser())
