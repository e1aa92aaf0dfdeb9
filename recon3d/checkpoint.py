"""Checkpoint files of the learned parts: plain dicts of tensors and JSON-able values.

They are read with `torch.load(weights_only=True)`, so no code runs from a file, and written
atomically, so a killed job never leaves a truncated checkpoint under the final name.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator

import torch

from recon3d.errors import InputError
from recon3d.video import atomic_path


def write_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def read_checkpoint(path: str | os.PathLike, what: str, version: int, hint: str) -> dict:
    """The dict saved at `path` for a `what` model of format `version`, or a one-line InputError
    that ends with `hint` (what to do)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(checkpoint, dict):
            raise TypeError(f"holds a {type(checkpoint).__name__}, not a checkpoint")
        found = checkpoint["format_version"]
    except pickle.UnpicklingError:  # torch's own message spans many lines
        raise InputError(f"{path}: not a torch checkpoint; {hint}") from None
    except (OSError, RuntimeError, KeyError, TypeError, EOFError, IndexError) as err:
        raise InputError(f"{path}: not a readable {what} checkpoint ({err}); {hint}") from None
    if found != version:
        raise InputError(f"{path}: {what} format {found}, expected {version}; {hint}")
    return checkpoint


@contextlib.contextmanager
def malformed_checkpoint(path: str | os.PathLike, what: str, hint: str) -> Iterator[None]:
    """Turns errors while building a model from a checkpoint's contents into one line."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: malformed {what} checkpoint ({str(err).splitlines()[0]}); {hint}") from None
