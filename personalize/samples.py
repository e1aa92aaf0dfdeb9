"""Default inputs that every installation has: real media shipped inside registry packages.

They let the README's main command run on a fresh machine with nothing downloaded.
"""

from __future__ import annotations

import importlib.util
from importlib.resources import files
from pathlib import Path


def sample_photo() -> Path:
    """scikit-image's bundled astronaut photo (Eileen Collins, NASA, public domain), 512x512."""
    return Path(str(files("skimage.data").joinpath("astronaut.png")))


def sample_speech() -> Path:
    """pysptk's bundled CMU ARCTIC utterance (speaker awb, 4 s, 16 kHz; free licence, see the
    COPYING beside it). Found without importing pysptk, whose import needs setuptools'
    pkg_resources."""
    spec = importlib.util.find_spec("pysptk")
    return Path(spec.origin).parent / "example_audio_data" / "arctic_a0007.wav"
