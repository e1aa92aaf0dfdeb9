"""The general (corpus-trained) audio2pose models shipped with talkface, one per face model.

A one-shot actor (a single photo: no clip of its own to fine-tune on) gets its head motion and
expression from speech through these, with nothing downloaded. Each is the network of
`audio2pose.train.pretrain_audio2pose` with the default `PretrainAudio2PoseConfig` (600 steps,
seed 0), trained on the 20 clips of the shared corpus (Apache-2.0 / CC-BY-4.0 example media of
SadTalker, video-retalking and PC-AVS: HDTF, VoxCeleb and video-retalking clips), the last 30% of
each clip held out; the targets are those clips' 3D reconstructions with that face model. Its
style (mean and spread of expression and pose) is the corpus average; `audio2pose.finetune`
replaces it with an actor's own. Each file holds weights, style statistics and config, and a
`provenance` dict (corpus clips, steps, final training and held-out losses, toolkit version).

Shipped: `general-mediapipe-builtin.pt` (the built-in face model) and `general-ict-facekit.pt`
(ICT-FaceKit). To reproduce them (the ICT reconstructions take long; `--reuse-cache` copies
existing ones into WORK/cache):

    .venv/bin/python scripts/train_general_audio2pose.py --face-model builtin \
        --corpus ../shared/data/clips --work out/general-audio2pose/builtin
    .venv/bin/python scripts/train_general_audio2pose.py --face-model path/to/ict-facekit/FaceXModel \
        --corpus ../shared/data/clips --work out/general-audio2pose/ict [--reuse-cache DIR]
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from audio2pose.model import AudioToPose
from recon3d.errors import InputError

PREFIX, SUFFIX = "general-", ".pt"


def _assets():
    return files("audio2pose") / "assets"


def general_model_path(face_model_name: str) -> Path:
    """Where the general model for the named face model (`FaceModel.name`) ships, inside the
    package (the file may not exist: see `shipped_general_models`)."""
    return Path(str(_assets() / f"{PREFIX}{face_model_name}{SUFFIX}"))


def shipped_general_models() -> list[str]:
    """Names of the face models a general model ships for."""
    assets = _assets()
    if not assets.is_dir():
        return []
    return sorted(entry.name[len(PREFIX):-len(SUFFIX)] for entry in assets.iterdir()
                  if entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX))


def load_general_model(face_model_name: str) -> AudioToPose:
    """The shipped general model for the named face model, in eval mode; InputError when none
    ships for it."""
    resource = _assets() / f"{PREFIX}{face_model_name}{SUFFIX}"
    if "/" in face_model_name or "\\" in face_model_name or not resource.is_file():
        shipped = ", ".join(shipped_general_models()) or "none"
        raise InputError(f"no general audio2pose model ships for face model {face_model_name!r} (shipped: {shipped}); "
                         "train one with `talkface pretrain audio2pose --corpus DIR --face-model SPEC`")
    with as_file(resource) as path:
        return AudioToPose.load(path, face_model_name).eval()
