"""An actor bundle made once per session from a real clip with a tiny configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from personalize.options import personalize_preset
from personalize.pipeline import PersonalizeConfig, personalize

ACTOR_CLIP = "vox_00010.mp4"
"""4.2 s, 224 x 224: the quickest real clip to personalize."""


def tiny_config() -> PersonalizeConfig:
    """The tiny preset on the built-in face model (tests do not depend on ICT-FaceKit being installed)."""
    return dataclasses.replace(personalize_preset("tiny"), face_model="builtin")


@pytest.fixture(scope="session")
def actor_dir(clips: Path, flite: str, tmp_path_factory) -> Path:
    """A finished bundle of ACTOR_CLIP; tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("actor") / "actor"
    personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    return root
