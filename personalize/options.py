"""Settings fields as options of the CLI and of actor manifests: one default and one help text.

An option names one or more fields of a nested settings dataclass by dotted path
("fit.landmark_steps"); its type is the field's, its help text the field's docstring (the string
literal under it, as PyTorch3D's and nerfstudio's configs document their fields) and its default
the field's value in the settings it is applied to (a preset's: `PERSONALIZE_PRESETS`). The CLI
(`personalize.cli`) and the manifests (`personalize.manifest`) read the same tables, so neither
restates a default or a help text.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import inspect
import math
import textwrap
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from audio2pose.train import FinetuneConfig, PretrainAudio2PoseConfig
from personalize.evaluate import EvaluateConfig
from personalize.generate import GenerateConfig
from personalize.pipeline import PersonalizeConfig
from recon3d.device import DeviceName, resolve_device
from recon3d.errors import InputError
from recon3d.fit import FitConfig
from recon3d.pretrain import PretrainReconConfig
from recon3d.track import TrackConfig
from refine.actor import ACTOR_REFINE, GPU_REFINE_SIZE, TINY_REFINE
from refine.train import RefineTrainConfig

PresetName = Literal["auto", "cpu", "gpu", "tiny"]

_TINY_FINETUNE = FinetuneConfig()
PERSONALIZE_PRESETS: dict[str, PersonalizeConfig] = {
    "cpu": PersonalizeConfig(),
    # A GPU trains the refinement GAN at twice the CPU preset's side in the same time.
    "gpu": PersonalizeConfig(
        refine=dataclasses.replace(
            PersonalizeConfig().refine, network=dataclasses.replace(ACTOR_REFINE.network, size=GPU_REFINE_SIZE)
        )
    ),
    # Seconds, not minutes: smoke tests and trying the toolkit out (the actor moves, crudely).
    "tiny": PersonalizeConfig(
        crop_size=128,
        fit=FitConfig(landmark_steps=150, photometric_steps=2, render_size=64),
        finetune=dataclasses.replace(_TINY_FINETUNE, scratch=dataclasses.replace(_TINY_FINETUNE.scratch, steps=10)),
        refine=TINY_REFINE,
    ),
}
"""`PersonalizeConfig` presets by name; "auto" is "gpu" on a CUDA device, else "cpu"."""


def personalize_preset(name: PresetName = "auto", device: torch.device | str = "cpu") -> PersonalizeConfig:
    """A copy of the named preset ("auto": "gpu" on a CUDA `device`, else "cpu")."""
    if name == "auto":
        name = "gpu" if torch.device(device).type == "cuda" else "cpu"
    if name not in PERSONALIZE_PRESETS:
        raise InputError(f"preset {name!r}: one of auto, {', '.join(PERSONALIZE_PRESETS)}")
    return copy.deepcopy(PERSONALIZE_PRESETS[name])


@dataclass(frozen=True)
class ConfigOption:
    """One option: the settings fields it sets (all to its value), and what the field's own type
    and docstring do not say."""

    name: str
    """Option name: `--name-with-dashes` on the CLI, `name_with_underscores` in a manifest."""
    paths: tuple[str, ...]
    """Dotted field paths in the settings dataclass."""
    kind: type | None = None
    """The option's type where it is not the field's (a path the settings hold as text)."""
    help: str | None = None
    """Where the field's docstring needs its context (a step count deep in a nested config)."""
    metavar: str | None = None


PERSONALIZE_OPTIONS = (
    ConfigOption("face_model", ("face_model",)),
    ConfigOption("crop_size", ("crop_size",)),
    ConfigOption("landmark_steps", ("fit.landmark_steps",)),
    ConfigOption("photometric_steps", ("fit.photometric_steps",)),
    ConfigOption(
        "audio2pose_steps",
        ("finetune.scratch.steps",),
        help="training steps of the actor's audio -> expression + pose network when there is no general model",
    ),
    ConfigOption("voice_sample", ("voice_sample",), kind=Path),
    ConfigOption(
        "refine_steps",
        ("refine.steps",),
        help="training steps of the actor's refinement GAN (0: none; only `generate --synthesis render` uses it, "
        f"{ACTOR_REFINE.steps} is the CPU preset of refine.actor)",
    ),
    ConfigOption("refine_size", ("refine.network.size",)),
    ConfigOption("refine_init", ("refine_init",), kind=Path),
    ConfigOption("end", ("end",), metavar="SECONDS"),
    ConfigOption("seed", ("finetune.scratch.seed", "refine.seed"), help="random seed of the training"),
)
"""`talkface personalize`'s settings (and a manifest's per-actor options)."""

GENERATE_OPTIONS = (
    ConfigOption("pose_mode", ("pose_mode",)),
    ConfigOption("pose_amplitude", ("pose_amplitude",)),
    ConfigOption("max_seconds", ("max_seconds",)),
    ConfigOption("articulation", ("articulation",)),
    ConfigOption("habits", ("habits",)),
    ConfigOption("synthesis", ("synthesis",)),
    ConfigOption("refine", ("refine",)),
    ConfigOption("brows", ("brows",)),
    ConfigOption("blinks", ("eyes.blinks",), metavar="auto|off|RATE"),
    ConfigOption("seed", ("eyes.seed",), help="seed of the blink and gaze draws"),
)
"""`talkface generate`'s settings."""

EVALUATE_OPTIONS = (
    ConfigOption("pose_mode", ("generate.pose_mode",)),
    ConfigOption("articulation", ("generate.articulation",)),
    ConfigOption("synthesis", ("generate.synthesis",)),
    ConfigOption("blinks", ("generate.eyes.blinks",), metavar="auto|off|RATE"),
    ConfigOption("face_model", ("face_model",)),
)
"""`talkface evaluate`'s settings."""

TRACK_OPTIONS = (
    ConfigOption("crop_size", ("crop_size",)),
    ConfigOption("crop_scale", ("crop_scale",)),
    ConfigOption("max_gap", ("max_gap",)),
)
"""`talkface track`'s settings."""

FIT_OPTIONS = (
    ConfigOption("landmark_steps", ("landmark_steps",)),
    ConfigOption("photometric_steps", ("photometric_steps",)),
    ConfigOption("render_size", ("render_size",)),
)
"""`talkface reconstruct`'s settings."""

PRETRAIN_RECON_OPTIONS = (
    ConfigOption("epochs", ("epochs",)),
    ConfigOption("batch_size", ("batch_size",)),
    ConfigOption("lr", ("lr",)),
    ConfigOption("image_size", ("regressor.image_size",)),
    ConfigOption("width", ("regressor.width",)),
    ConfigOption("max_frames_per_clip", ("max_frames_per_clip",)),
    ConfigOption("seed", ("seed",)),
)
"""`talkface pretrain recon`'s settings."""

PRETRAIN_AUDIO2POSE_OPTIONS = (
    ConfigOption("steps", ("train.steps",)),
    ConfigOption("batch_size", ("train.batch_size",)),
    ConfigOption("seq_len", ("train.seq_len",)),
    ConfigOption("lr", ("train.lr",)),
    ConfigOption("weight_decay", ("train.weight_decay",)),
    ConfigOption("lstm_hidden", ("model.lstm_hidden",)),
    ConfigOption("lstm_layers", ("model.lstm_layers",)),
    ConfigOption("dropout", ("model.dropout",)),
    ConfigOption("log_every", ("log_every",)),
    ConfigOption("val_fraction", ("val_fraction",)),
    ConfigOption("landmark_steps", ("fit.landmark_steps",), help="landmark-fit steps of the corpus reconstructions"),
    ConfigOption("seed", ("train.seed",)),
)
"""`talkface pretrain audio2pose`'s settings."""

PRETRAIN_REFINE_OPTIONS = (
    ConfigOption("steps", ("steps",)),
    ConfigOption("batch_size", ("batch_size",)),
    ConfigOption("memory_slots", ("memory.slots",)),
    ConfigOption("log_every", ("log_every",)),
    ConfigOption("seed", ("seed",)),
)
"""`talkface pretrain refine`'s settings (on `refine.actor.CORPUS_REFINE`)."""

OPTION_TABLES: dict[type, tuple[ConfigOption, ...]] = {
    PersonalizeConfig: PERSONALIZE_OPTIONS,
    GenerateConfig: GENERATE_OPTIONS,
    EvaluateConfig: EVALUATE_OPTIONS,
    TrackConfig: TRACK_OPTIONS,
    FitConfig: FIT_OPTIONS,
    PretrainReconConfig: PRETRAIN_RECON_OPTIONS,
    PretrainAudio2PoseConfig: PRETRAIN_AUDIO2POSE_OPTIONS,
    RefineTrainConfig: PRETRAIN_REFINE_OPTIONS,
}
"""The options of each settings class (another module may keep its own: `personalize.jobs.JOBS_OPTIONS`)."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring, on one line} of a dataclass (and its dataclass bases)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(base) or base is object:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(base))).body[0].body
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _field(cls: type, path: str) -> tuple[Any, str]:
    """(type, docstring) of the field at dotted `path` of dataclass `cls`."""
    *parents, name = path.split(".")
    for parent in parents:
        cls = typing.get_type_hints(cls)[parent]
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise KeyError(f"{cls.__name__} has no field {name!r}")
    return hints[name], field_docs(cls).get(name, "")


def get_path(settings: Any, path: str) -> Any:
    for name in path.split("."):
        settings = getattr(settings, name)
    return settings


def replace_path(settings: Any, path: str, value: Any) -> Any:
    """`settings` with the field at dotted `path` set to `value` (nested dataclasses.replace)."""
    name, _, rest = path.partition(".")
    if rest:
        value = replace_path(getattr(settings, name), rest, value)
    return dataclasses.replace(settings, **{name: value})


def option_kind(cls: type, option: ConfigOption) -> Any:
    """The option's value type hint: its own `kind`, else its first field's."""
    return option.kind or _field(cls, option.paths[0])[0]


def option_help(cls: type, option: ConfigOption, presets: Mapping[str, Any] | None = None) -> str:
    """The option's help (its first field's docstring), with its default: the first preset's value,
    and the other presets' where they differ."""
    text = option.help or _field(cls, option.paths[0])[1]
    if not text:
        raise ValueError(f"{cls.__name__}.{option.paths[0]} has no docstring to be the help of --{option.name}")
    values = [(name, get_path(preset, option.paths[0])) for name, preset in (presets or {"": cls()}).items()]
    others = "".join(f"; {name} preset: {value}" for name, value in values[1:] if value != values[0][1])
    if "default:" in text:  # the docstring says it in words
        return f"{text} ({others.removeprefix('; ')})" if others else text
    return f"{text} (default: {values[0][1]}{others})"


def option_types(cls: type) -> dict[str, Any]:
    """{option name: value type} of the settings class's options."""
    return {option.name: option_kind(cls, option) for option in OPTION_TABLES[cls]}


def settings_field(
    settings: type, options: tuple[ConfigOption, ...] | None = None, defaults: Mapping[str, Any] | None = None
) -> Any:
    """A command's dict field standing for the `options` (default: the class's table) of the
    `settings` class; `defaults`, the settings they apply to by name (presets; default: the class's
    own), give the help's defaults."""
    return dataclasses.field(
        default_factory=dict,
        metadata={"settings": settings, "options": options or OPTION_TABLES[settings], "defaults": defaults},
    )


def manifest_options() -> dict[str, Any]:
    """{option: type hint} an actor of a manifest may give: `talkface personalize`'s settings, its
    preset and its device."""
    return {**option_types(PersonalizeConfig), "preset": PresetName, "device": DeviceName}


SEED_RANGE = range(2**32)
"""Seeds numpy's generators take (torch's take more): checked before any stage trains."""


def apply_options(settings: Any, values: Mapping[str, Any], options: tuple[ConfigOption, ...] | None = None) -> Any:
    """`settings` with the `options` (default: its class's table) in `values` (by name; None: not
    given) set. A value the settings refuse, a NaN or infinite number or a seed out of
    `SEED_RANGE` is an InputError naming the option (so a manifest's or a caller's is refused
    before any work, as the CLI's is)."""
    table = {option.name: option for option in options or OPTION_TABLES[type(settings)]}
    for name, value in values.items():
        if value is None:
            continue
        option = table[name]
        flag = f"--{name.replace('_', '-')}"
        if name == "seed" and value not in SEED_RANGE:
            raise InputError(f"{flag} {value}: a seed is a whole number from 0 to {SEED_RANGE[-1]}")
        if isinstance(value, Path) and option_kind(type(settings), option) is Path:
            value = str(value)  # the settings record paths as text (JSON manifests)
        try:
            for path in option.paths:
                settings = replace_path(settings, path, value)
        except ValueError as err:
            raise InputError(f"{flag} {value}: {err}") from None
        if isinstance(value, float) and not math.isfinite(value):  # where the settings' own checks let it by
            raise InputError(f"{flag} {value}: give a finite number")
    return settings


def personalize_config(
    preset: PresetName = "auto", device: DeviceName | torch.device = "cpu", **values: Any
) -> PersonalizeConfig:
    """The preset's settings on `device` with the personalize options in `values` set."""
    device = resolve_device(device) if isinstance(device, str) else device
    return apply_options(personalize_preset(preset, device), values)
