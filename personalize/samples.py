"""Default inputs that every installation has: real media shipped inside registry packages.

They let the README's main command run on a fresh machine with nothing downloaded.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_photo() -> Path:
    """scikit-image's bundled astronaut photo (Eileen Collins, NASA, public domain), 512x512."""
    return Path(str(files("skimage.data").joinpath("astronaut.png")))
