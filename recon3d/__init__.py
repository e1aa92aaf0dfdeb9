"""Face tracking, 3D morphable face models, coefficient regression and fitting, albedo.

First stage of the pipeline: video in (`recon3d.video`), per-frame dense landmarks and the stable
per-clip crop out (`recon3d.track`).
"""

from recon3d.crop import CropTransform, stable_crop
from recon3d.errors import InputError
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import MediaInfo, VideoWriter, iter_frames, probe, read_audio, read_frames, write_video

__all__ = [
    "CropTransform",
    "FaceTrack",
    "InputError",
    "MediaInfo",
    "TrackConfig",
    "VideoWriter",
    "iter_frames",
    "probe",
    "read_audio",
    "read_frames",
    "stable_crop",
    "track_video",
    "write_video",
]

# Face models need torch (~1 s to import): exported lazily so `talkface track` stays quick.
_LAZY = {
    "COEFF_NAMES": "recon3d.facemodel",
    "CoeffLayout": "recon3d.facemodel",
    "Coeffs": "recon3d.facemodel",
    "FaceModel": "recon3d.facemodel",
    "load_face_model": "recon3d.facemodels",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recon3d' has no attribute {name!r}")
