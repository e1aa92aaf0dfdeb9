"""The `talkface` subcommands, one dataclass each: fields are the options, `main` runs it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from personalize.samples import sample_photo
from recon3d.export import export_track
from recon3d.track import TrackConfig, track_video

log = logging.getLogger("talkface")


def option(help: str, *flags: str, **kwargs) -> dict:
    """Field metadata for the CLI: help text and optional explicit flags."""
    return {"help": help, **({"flags": list(flags)} if flags else {}), **kwargs}


@dataclass
class TrackCommand:
    """Track the face in a video: dense landmarks, boxes, confidence, the stable crop, a preview.

    Writes OUTPUT/track.npz (landmarks and crop transform), OUTPUT/crop.mp4 (the head region at
    --crop-size, with the audio) and OUTPUT/preview.mp4 (landmarks drawn on the frames). A photo
    counts as a one-frame video (then crop.png and preview.png).
    """

    video: Path | None = field(
        default=None,
        metadata=option("video or photo with one face (default: scikit-image's astronaut photo)", positional=True),
    )
    output: Path = field(default=Path("out/track"), metadata=option("output directory", "-o", "--output"))
    crop_size: int = field(default=256, metadata=option("side of the crop in pixels"))
    crop_scale: float = field(default=1.8, metadata=option("crop side as a multiple of the largest face box"))
    max_gap: int = field(default=5, metadata=option("longest run of frames without a face that is interpolated"))
    preview: bool = field(default=True, metadata=option("write the preview with landmarks drawn"))

    def main(self, progress: bool = True) -> None:
        video = self.video
        if video is None:
            video = sample_photo()
            log.info("no VIDEO given: tracking %s", video)
        config = TrackConfig(crop_size=self.crop_size, crop_scale=self.crop_scale, max_gap=self.max_gap)
        track = track_video(video, config, progress=progress)
        paths = export_track(video, track, self.output, preview=self.preview, progress=progress)
        log.info(
            "%d frames, face found in %d (%.1f%%), confidence min %.2f mean %.2f; crop %.0f px square at (%.0f, %.0f)",
            track.num_frames, track.detected.sum(), 100 * track.detected.mean(), track.confidence.min(),
            track.confidence.mean(), track.crop.side, track.crop.x0, track.crop.y0,
        )
        for path in paths:
            log.info("wrote %s", path)


COMMANDS = {"track": TrackCommand}
