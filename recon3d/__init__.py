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
