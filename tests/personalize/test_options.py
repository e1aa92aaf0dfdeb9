"""Settings as options: presets, the CLI's options derived from the settings fields, and a smoke
run of each preset."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from audio2pose.train import PretrainAudio2PoseConfig
from personalize.bundle import STAGES
from personalize.cli import build_parser, main, make_command
from personalize.evaluate import EvaluateConfig
from personalize.generate import GenerateConfig
from personalize.jobs import JOBS_OPTIONS, JobsConfig
from personalize.options import (
    OPTION_TABLES,
    PERSONALIZE_PRESETS,
    apply_options,
    field_docs,
    option_help,
    personalize_config,
    personalize_preset,
)
from personalize.pipeline import PersonalizeConfig
from recon3d.errors import InputError
from recon3d.fit import FitConfig
from recon3d.pretrain import PretrainReconConfig
from recon3d.track import TrackConfig
from refine.actor import CORPUS_REFINE


def parsed(*argv: str):
    """The command object the CLI would run for `argv`."""
    args = vars(build_parser().parse_args(list(argv)))
    args.pop("quiet"), args.pop("verbose")
    return make_command(args)


def test_field_docstrings_are_read_from_the_source():
    docs = field_docs(FitConfig)
    assert docs["landmark_steps"] == "Adam steps of the landmark stage."
    assert "photometric" in docs["photometric_steps"] and "\n" not in docs["photometric_steps"]


@pytest.mark.parametrize("settings", list(OPTION_TABLES))
def test_every_option_has_a_help_text_and_its_default(settings):
    for option in OPTION_TABLES[settings]:
        text = option_help(settings, option)
        assert len(text) > 20 and "default: " in text


def test_the_cli_defaults_are_the_settings_defaults():
    """One default: an option not given leaves the preset's (or the settings') value."""
    assert parsed("personalize").config(torch.device("cpu")) == PERSONALIZE_PRESETS["cpu"]
    assert parsed("personalize").config(torch.device("cuda")) == PERSONALIZE_PRESETS["gpu"]
    assert apply_options(GenerateConfig(), parsed("generate").settings) == GenerateConfig()
    assert apply_options(EvaluateConfig(), parsed("evaluate").settings) == EvaluateConfig()


def test_every_command_s_help_renders(capsys):
    for argv in (
        ["personalize"],
        ["generate"],
        ["evaluate"],
        ["reconstruct"],
        ["track"],
        ["speak"],
        ["pretrain", "recon"],
        ["pretrain", "audio2pose"],
        ["pretrain", "refine"],
        ["jobs", "run"],
    ):
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*argv, "--help"])
        assert done.value.code == 0 and "(default: " in capsys.readouterr().out


def test_the_pretrainers_and_jobs_defaults_are_their_settings_defaults():
    assert apply_options(FitConfig(), parsed("reconstruct").settings) == FitConfig()
    assert apply_options(TrackConfig(), parsed("track", "--max-gap", "2").settings) == TrackConfig(max_gap=2)
    corpus = ["--corpus", "clips"]
    assert apply_options(PretrainReconConfig(), parsed("pretrain", "recon", *corpus).settings) == PretrainReconConfig()
    audio2pose = parsed("pretrain", "audio2pose", *corpus, "--lstm-layers", "2", "--seed", "4").settings
    expected = PretrainAudio2PoseConfig()
    expected = dataclasses.replace(
        expected,
        model=dataclasses.replace(expected.model, lstm_layers=2),
        train=dataclasses.replace(expected.train, seed=4),
    )
    assert apply_options(PretrainAudio2PoseConfig(), audio2pose) == expected
    assert apply_options(CORPUS_REFINE, parsed("pretrain", "refine", *corpus).settings) == CORPUS_REFINE
    jobs = parsed("jobs", "run", "m.yaml", "--retries", "3").settings
    assert apply_options(JobsConfig(), jobs, JOBS_OPTIONS) == JobsConfig(retries=3)


def test_options_override_the_preset_and_set_every_field_they_name():
    command = parsed("personalize", "--preset", "tiny", "--crop-size", "96", "--seed", "3", "--refine-size", "64")
    config = command.config(torch.device("cpu"))
    tiny = PERSONALIZE_PRESETS["tiny"]
    assert config.crop_size == 96 and config.fit == tiny.fit and config.refine.network.size == 64
    assert config.finetune.scratch.seed == 3 and config.refine.seed == 3
    generate = apply_options(GenerateConfig(), parsed("generate", "--no-refine", "--pose-mode", "source").settings)
    assert generate == dataclasses.replace(GenerateConfig(), refine=False, pose_mode="source")
    evaluate = apply_options(EvaluateConfig(), parsed("evaluate", "--synthesis", "render").settings)
    assert evaluate.generate.synthesis == "render"


def test_presets_from_python():
    assert personalize_preset("auto", "cpu") == PERSONALIZE_PRESETS["cpu"]
    assert personalize_preset("auto", torch.device("cuda")) == PERSONALIZE_PRESETS["gpu"]
    # A copy: settings changed in place (nested ones too) do not leak into the next actor's.
    tiny = personalize_preset("tiny")
    tiny.finetune.scratch.steps = 5
    assert personalize_preset("tiny") == PERSONALIZE_PRESETS["tiny"] != tiny
    assert PERSONALIZE_PRESETS["tiny"].finetune.scratch.steps == 10
    assert PERSONALIZE_PRESETS["gpu"].refine.network.size == 2 * PERSONALIZE_PRESETS["cpu"].refine.network.size
    assert personalize_config("tiny", "cpu", landmark_steps=7).fit.landmark_steps == 7
    assert all(isinstance(preset, PersonalizeConfig) for preset in PERSONALIZE_PRESETS.values())


def test_a_value_the_settings_refuse_names_the_option():
    with pytest.raises(InputError, match=r"^--refine-size 100: "):
        personalize_config("cpu", "cpu", refine_size=100)
    with pytest.raises(InputError, match="preset 'huge'"):
        personalize_preset("huge")


@pytest.mark.e2e
@pytest.mark.parametrize("preset", list(PERSONALIZE_PRESETS))
def test_each_preset_personalizes_the_default_photo(preset, tmp_path, flite):
    """Smoke test: `talkface personalize --preset NAME` makes a complete bundle (a photo: seconds)."""
    actor = tmp_path / "actor"
    argv = ["-q", "personalize", "--actor", str(actor), "--preset", preset, "--face-model", "builtin"]
    assert main([*argv, "--device", "cpu"]) == 0
    manifest = json.loads((actor / "manifest.json").read_text())
    assert sorted(manifest["stages"]) == sorted(STAGES)
    expected = dataclasses.asdict(dataclasses.replace(PERSONALIZE_PRESETS[preset], face_model="builtin"))
    assert manifest["settings"]["fit"] == expected["fit"] and manifest["settings"]["crop_size"] == expected["crop_size"]
