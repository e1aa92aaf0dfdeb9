"""The general audio2pose models trained at setup: they load, match their face model, and on real
speech move the mouth (which a constant or untrained network does not)."""

import math
import wave
from pathlib import Path

import pytest
import torch

from audio2pose import AudioToPose, load_general_model, predict_motion
from audio2pose.general import general_model_path, trained_general_models
from personalize.samples import sample_speech
from recon3d.errors import InputError
from recon3d.facemodels import load_face_model

MOUTH_OPENING = (62, 66)
"""iBUG-68 landmarks at the middle of the upper and lower inner lip."""
MIN_MOUTH_STD = 0.01
"""Decimetres (1 mm): the least spread of the mouth opening over an utterance of a speaking model."""


@pytest.fixture(scope="module")
def speech() -> Path:
    """A 4 s CMU ARCTIC utterance that pysptk ships."""
    return sample_speech()


def video_frames(path: Path) -> int:
    with wave.open(str(path)) as f:
        return math.ceil(f.getnframes() * 25 / f.getframerate())


def mouth_opening(face_model, exp: torch.Tensor) -> torch.Tensor:
    """(T,) distance between the inner lips of the mean identity with each frame's expression."""
    landmarks = face_model.landmarks(face_model.shape(torch.zeros(1, face_model.layout.id_dim), exp))
    return (landmarks[:, MOUTH_OPENING[0]] - landmarks[:, MOUTH_OPENING[1]]).norm(dim=-1)


@pytest.fixture(scope="module")
def builtin():
    return load_face_model("builtin")


def trained(name: str) -> None:
    if not general_model_path(name).is_file():
        pytest.skip(
            f"no general audio2pose model for {name} at {general_model_path(name)} (scripts/setup.sh trains "
            "the built-in model's when it finds ../shared/data/clips)"
        )


@pytest.fixture(scope="module")
def general(builtin) -> AudioToPose:
    trained(builtin.name)
    return load_general_model(builtin.name)


def test_builtin_general_model_is_there_and_fits_the_builtin_face_model(general, builtin):
    assert builtin.name in trained_general_models()
    assert general_model_path(builtin.name).is_file()
    assert general.face_model == builtin.name
    assert general.exp_dim == builtin.layout.exp_dim
    assert not general.training


def test_builtin_general_model_moves_the_mouth_with_speech(general, builtin, speech):
    motion = predict_motion(general, speech)
    frames = video_frames(speech)
    assert motion.exp.shape == (frames, builtin.layout.exp_dim)
    assert motion.angle.shape == motion.trans.shape == (frames, 3)
    for values in (motion.exp, motion.angle, motion.trans):
        assert torch.isfinite(values).all()
    assert motion.angle_degrees().std(0).max() > 0.1  # the head moves too

    opening = mouth_opening(builtin, motion.exp)
    print(f"mouth opening {opening.mean():.3f} +- {opening.std():.3f} dm")
    assert opening.std() > MIN_MOUTH_STD

    # The same network untrained (with the trained model's style) barely moves the mouth.
    torch.manual_seed(0)
    untrained = AudioToPose(general.exp_dim, general.config)
    untrained.set_style(general.target_mean, general.target_std)
    assert mouth_opening(builtin, predict_motion(untrained, speech).exp).std() < MIN_MOUTH_STD


def test_unknown_face_model_has_no_general_model():
    with pytest.raises(
        InputError, match="no general audio2pose model for face model 'no-such-model'.*train_general_audio2pose.py"
    ):
        load_general_model("no-such-model")
    with pytest.raises(InputError, match="not a face model name"):
        load_general_model("../elsewhere")


def test_ict_general_model_moves_with_speech(speech):
    trained("ict-facekit")
    model = load_general_model("ict-facekit")
    assert model.face_model == "ict-facekit"
    assert model.exp_dim == 53  # ICT-FaceKit's expression blendshapes
    motion = predict_motion(model, speech)
    assert motion.exp.shape == (video_frames(speech), 53)
    assert torch.isfinite(motion.targets()).all()
    # Blendshape weights (0..1): the most active one (trained ~0.14, untrained < 0.001) varies.
    assert motion.exp.std(0).max() > 0.02
