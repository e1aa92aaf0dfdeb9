"""An actor bundle made once per session from a real clip with a tiny configuration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from audio2pose.train import FinetuneConfig
from personalize.pipeline import PersonalizeConfig, personalize
from recon3d.fit import FitConfig
from refine.memory import MemoryConfig
from refine.networks import NetworkConfig
from refine.train import RefineTrainConfig

TINY_REFINE = RefineTrainConfig(network=NetworkConfig(size=32, base_channels=8, max_channels=16),
                                memory=MemoryConfig(slots=32), steps=4, checkpoint_every=2, sample_every=4, log_every=2)

ACTOR_CLIP = "vox_00010.mp4"
"""4.2 s, 224 x 224: the quickest real clip to personalize."""


def tiny_config() -> PersonalizeConfig:
    finetune = FinetuneConfig()
    return PersonalizeConfig(
        face_model="builtin",
        crop_size=128,
        fit=FitConfig(landmark_steps=150, photometric_steps=2, render_size=64),
        finetune=dataclasses.replace(finetune, scratch=dataclasses.replace(finetune.scratch, steps=10)),
        refine=TINY_REFINE,
    )


@pytest.fixture(scope="session")
def actor_dir(clips: Path, flite: str, tmp_path_factory) -> Path:
    """A finished bundle of ACTOR_CLIP; tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("actor") / "actor"
    personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    return root
