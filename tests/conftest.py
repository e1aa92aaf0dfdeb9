"""Shared fixtures: the real media in ../shared/data, and small videos made on the fly with PyAV.

Test videos are encoded here with PyAV directly (not with `recon3d.video.write_video`) so the
reader is tested against independently made files.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SHARED_DATA = Path(os.environ.get("TALKFACE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test on the real media in ../shared/data is end-to-end (`-m "not e2e"` leaves the unit tests)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


requires_flite = pytest.mark.skipif(
    shutil.which("flite") is None,
    reason="CMU Flite is not installed (scripts/setup.sh installs it with apt-get as root; or apt/brew install flite)",
)
"""For tests that speak, and those that personalize (every actor gets a voice)."""


@pytest.fixture(scope="session")
def flite() -> str:
    path = shutil.which("flite")
    if path is None:
        pytest.skip(requires_flite.kwargs["reason"])
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "clips").is_dir():
        pytest.skip(f"real clips not found at {SHARED_DATA} (set TALKFACE_SHARED_DATA to the shared/data folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def clips(shared_data: Path) -> Path:
    return shared_data / "clips"


@pytest.fixture(scope="session")
def ict_folder(shared_data: Path, tmp_path_factory) -> Path:
    """The real ICT-FaceKit FaceXModel folder, unpacked once per session (skipped where absent)."""
    archive = shared_data / "facemodels" / "ict-facekit.tar.xz"
    if not archive.is_file():
        pytest.skip(f"ICT-FaceKit archive not found at {archive}")
    root = tmp_path_factory.mktemp("ict")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root / "ict-facekit" / "FaceXModel"


@pytest.fixture(scope="session")
def ict_model(ict_folder: Path, tmp_path_factory):
    """The real ICT-FaceKit model, converted once per session into a private $TALKFACE_HOME cache."""
    from recon3d.facemodels import load_ict

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKFACE_HOME", str(tmp_path_factory.mktemp("ict_home")))
        patch.delenv("TALKFACE_FACE_MODEL", raising=False)
        return load_ict(ict_folder)


def encode_video(
    path: Path,
    frames: np.ndarray,
    fps: float = 25.0,
    codec: str = "libx264",
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    pixel_aspect: Fraction | None = None,
) -> Path:
    """Encodes (T, H, W, 3) uint8 frames (+ mono float audio) with explicit pts when given, tagged
    with a display `rotation` (degrees counter-clockwise, as phones tag portrait video stored
    sideways) and a sample aspect ratio (`pixel_aspect`) when given."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        if pixel_aspect is not None:
            stream.codec_context.sample_aspect_ratio = pixel_aspect
        if time_base is not None:
            stream.time_base = time_base
        astream = None
        if audio is not None:
            astream = container.add_stream(
                "aac" if codec != "libvpx-vp9" else "libopus", rate=sample_rate if codec != "libvpx-vp9" else 48000
            )
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if astream is not None:
            samples = audio.astype(np.float32)
            if astream.rate != sample_rate:
                samples = np.interp(
                    np.arange(0, len(audio), sample_rate / astream.rate), np.arange(len(audio)), audio
                ).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = astream.rate
            frame.pts = 0
            container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    return path


def numbered_frames(count: int, size: int = 64, step: int = 8) -> np.ndarray:
    """Frames whose brightness encodes their index (index * step mod 256), to check frame selection."""
    values = (np.arange(count) * step) % 256
    return np.broadcast_to(values[:, None, None, None], (count, size, size, 3)).astype(np.uint8).copy()


def frame_index(frame: np.ndarray, step: int = 8) -> int:
    """Inverse of `numbered_frames` (for indices < 256 / step)."""
    return int(round(float(frame.mean()) / step))
