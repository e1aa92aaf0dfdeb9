"""Where talkface keeps user data: `$TALKFACE_HOME` (default ~/.local/share/talkface)."""

from __future__ import annotations

import os
from pathlib import Path

ICT_SUBPATH = Path("facemodels") / "ict-facekit" / "FaceXModel"


def talkface_home() -> Path:
    """`$TALKFACE_HOME`, or ~/.local/share/talkface."""
    return Path(os.environ.get("TALKFACE_HOME") or Path.home() / ".local" / "share" / "talkface").expanduser()


def cache_dir() -> Path:
    """Converted models (`$TALKFACE_HOME/cache`); safe to delete."""
    return talkface_home() / "cache"


def default_face_model_path() -> Path:
    """`$TALKFACE_FACE_MODEL`, or `$TALKFACE_HOME/facemodels/ict-facekit/FaceXModel`."""
    explicit = os.environ.get("TALKFACE_FACE_MODEL")
    return Path(explicit).expanduser() if explicit else talkface_home() / ICT_SUBPATH
