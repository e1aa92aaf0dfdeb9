"""Manifests of many actors, read by `talkface jobs run` and `talkface evaluate --batch`.

YAML (a mapping with `actors`, a list of mappings, and optional `defaults` applied to each) or
CSV (a header row; an empty cell takes the default):

    defaults: {end: 70%, refine_steps: 500}
    actors:
      - {name: aoc, video: clips/hdtf_aoc_8s.mp4}
      - {name: katie, video: clips/hdtf_katie_8s.mp4, seed: 1, heldout: other/katie_2.mp4}

Every entry has a `name` (the actor bundle's directory name) and a `video`; `heldout` is a video
for evaluation (default: the tail of `video` after `end`); every other key is an option of
`talkface personalize` (`end` may be a percentage of the video's duration). Relative paths are
relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon3d.errors import InputError
from recon3d.video import probe

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = ("name", "video", "heldout")


@dataclass(frozen=True)
class ActorEntry:
    """One actor of a manifest."""

    name: str
    video: Path
    options: dict
    """Options of `talkface personalize`, typed; `end` in seconds."""
    heldout: Path | None = None


def read_manifest(path: str | Path, allowed: Mapping[str, Any]) -> list[ActorEntry]:
    """The entries of the manifest at `path`; `allowed` maps the options they may give to their
    type hints (`personalize.options.manifest_options`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such manifest")
    rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_yaml(path)
    entries, seen = [], set()
    for number, row in enumerate(rows, 1):
        where = f"{path}: actor {number}"
        name = str(row.get("name") or "")
        if not NAME_PATTERN.match(name):
            raise InputError(f"{where}: name {name!r} is not a directory name (letters, digits, _ . -)")
        if name in seen:
            raise InputError(f"{path}: actor {name!r} appears twice; names must be unique")
        seen.add(name)
        if not row.get("video"):
            raise InputError(f"{where} ({name}): no video; give each actor a video")
        video = path.parent / str(row["video"])
        unknown = sorted(set(row) - set(RESERVED) - set(allowed))
        if unknown:
            raise InputError(
                f"{where} ({name}): unknown option {unknown[0]!r}; options are {', '.join(sorted(allowed))}"
            )
        options = {
            key: _convert(value, allowed[key], f"{where} ({name}), {key}")
            for key, value in row.items()
            if key not in RESERVED and value is not None
        }
        # Like the videos, file options (voice_sample, refine_init) are relative to the manifest's folder.
        options = {key: path.parent / value if isinstance(value, Path) else value for key, value in options.items()}
        if isinstance(options.get("end"), str):
            check_video(video, f"{where} ({name})")  # its duration gives the share
            options["end"] = _percent_of_duration(options["end"], video, f"{where} ({name}), end")
        heldout = path.parent / str(row["heldout"]) if row.get("heldout") else None
        entries.append(ActorEntry(name, video, options, heldout))
    if not entries:
        raise InputError(f"{path}: the manifest lists no actors")
    return entries


def _read_yaml(path: Path) -> list[dict]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable YAML manifest ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("actors"), list):
        raise InputError(f"{path}: a YAML manifest is a mapping with an `actors` list (see `talkface jobs run --help`)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or not all(isinstance(row, dict) for row in data["actors"]):
        raise InputError(f"{path}: `defaults` and each of `actors` must be mappings of option: value")
    return [{**defaults, **row} for row in data["actors"]]


def _read_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # Excel's "CSV UTF-8" starts with a BOM
            rows = list(csv.DictReader(handle))
    except (csv.Error, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV manifest ({err})") from None
    # An empty cell is the command's default, not an empty string.
    return [{key.strip(): (value.strip() or None) for key, value in row.items() if key} for row in rows]


def option_type(hint) -> tuple[type, tuple | None]:
    """A command option's value type, Optional removed, and its choices when it is a Literal."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return type(args[0]), tuple(args)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return option_type(args[0])
    return hint, None


def _convert(value, hint, where: str):
    """`value` (from YAML or a CSV cell) as the option's type."""
    hint, choices = option_type(hint)
    if choices is not None:
        if value not in choices:
            raise InputError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if isinstance(value, str) and value.endswith("%") and hint is float:
        return value  # a share of the video's duration, resolved by the caller
    try:
        if hint is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "yes", "1")
        return hint(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}") from None


def check_video(video: Path, where: str) -> None:
    """An InputError, said for `where`, unless `video` is a file."""
    if video.is_dir():
        raise InputError(f"{where}: {video} is a folder, not a video; give the path of a video file")
    if not video.is_file():
        raise InputError(f"{where}: {video}: no such video")


def _percent_of_duration(value: str, video: Path, where: str) -> float:
    try:
        share = float(value.rstrip("%")) / 100
    except ValueError:
        raise InputError(f"{where}: {value!r} is neither seconds nor a percentage") from None
    if not 0 < share < 1:
        raise InputError(f"{where}: {value} must lie between 0% and 100%")
    return round(share * probe(video).duration, 3)
