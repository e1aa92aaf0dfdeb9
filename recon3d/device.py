"""The `--device auto|cpu|cuda` choice every command that runs torch offers."""

from __future__ import annotations

from typing import Literal

import torch

from recon3d.errors import InputError

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; "cuda" without a usable GPU is an InputError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is usable here (torch {torch.__version__}); use --device cpu")
    return torch.device(name)
