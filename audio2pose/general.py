"""The general (corpus-trained) audio2pose models, one per face model, kept in
`$TALKFACE_HOME/models` (default ~/.local/share/talkface/models).

A one-shot actor (a single photo: no clip of its own to train on) gets its head motion and
expression from speech through these. Weights are not shipped (no registry package carries any,
and trained weights stay out of the repository): `scripts/setup.sh` trains the built-in face
model's once, in a few minutes, when it finds a corpus of talking-head clips
(`$TALKFACE_CORPUS`, default ../shared/data/clips), with `scripts/train_general_audio2pose.py`:

    .venv/bin/python scripts/train_general_audio2pose.py --face-model builtin --corpus DIR

Each is the network of `audio2pose.train.pretrain_audio2pose` trained on the corpus clips' 3D
reconstructions with that face model (the last 30% of each clip held out). Its style (mean and
spread of expression and pose) is the corpus average; a one-shot actor replaces the mean with
the photo's own. Each file holds weights, style statistics and config, and a `provenance` dict
(corpus clips, steps, final training and held-out losses, toolkit version).
"""

from __future__ import annotations

from pathlib import Path

from audio2pose.model import AudioToPose
from recon3d.errors import InputError
from recon3d.facemodels.paths import talkface_home

PREFIX, SUFFIX = "general-audio2pose-", ".pt"


def models_dir() -> Path:
    return talkface_home() / "models"


def general_model_path(face_model_name: str) -> Path:
    """Where the general model for the named face model (`FaceModel.name`) is kept (the file may
    not exist: see `trained_general_models`)."""
    if "/" in face_model_name or "\\" in face_model_name:
        raise InputError(f"{face_model_name!r} is not a face model name")
    return models_dir() / f"{PREFIX}{face_model_name}{SUFFIX}"


def trained_general_models() -> list[str]:
    """Names of the face models a general model has been trained for."""
    if not models_dir().is_dir():
        return []
    return sorted(path.name[len(PREFIX) : -len(SUFFIX)] for path in models_dir().glob(f"{PREFIX}*{SUFFIX}"))


def load_general_model(face_model_name: str) -> AudioToPose:
    """The general model for the named face model, in eval mode; InputError when there is none."""
    path = general_model_path(face_model_name)
    if not path.is_file():
        trained = ", ".join(trained_general_models()) or "none"
        raise InputError(
            f"no general audio2pose model for face model {face_model_name!r} in {models_dir()} "
            f"(trained: {trained}); a photo actor needs one: run `scripts/train_general_audio2pose.py "
            "--face-model SPEC --corpus DIR` (setup.sh does it for the built-in model when it finds "
            "../shared/data/clips)"
        )
    return AudioToPose.load(path, face_model_name).eval()
