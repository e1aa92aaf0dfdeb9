"""The corpus cache: each talking-head clip of a training corpus tracked and reconstructed once,
shared by every pretrainer (`talkface pretrain recon|audio2pose|refine`,
scripts/train_general_audio2pose.py) and the evaluation scripts.

Files are named by the clip (its name, size and modification time: an edited clip is new) and,
for reconstructions, by the face model and the fit's settings, so a cache can serve several
corpora, face models and fits at once. Default location `$TALKFACE_HOME/corpus` (safe to delete).
Over several processes (`recon3d.distributed.World`) each makes its share of the missing files,
then all read every clip's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm import tqdm

from recon3d.distributed import World
from recon3d.facemodel import FaceModel
from recon3d.facemodels.paths import talkface_home
from recon3d.fit import FitConfig
from recon3d.reconstruct import Reconstruction, reconstruct_clip
from recon3d.track import FaceTrack, TrackConfig, track_video


def default_corpus_cache() -> Path:
    return talkface_home() / "corpus"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


class CorpusCache:
    """Tracks and reconstructions of corpus clips in the folder `root`."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_corpus_cache()

    def clip_key(self, video: Path) -> str:
        stat = video.stat()
        return f"{video.stem}-{_digest(f'{video.name} {stat.st_size} {stat.st_mtime_ns}')}"

    def track_path(self, video: Path) -> Path:
        return self.root / f"{self.clip_key(video)}.track.npz"

    def reconstruction_path(self, video: Path, model: FaceModel, fit: FitConfig, kind: str = "coeffs") -> Path:
        """The clip's reconstruction with `model` and `fit` (or, by `kind`, what a pretrainer
        derives from it, cached beside it)."""
        settings = _digest(json.dumps(dataclasses.asdict(fit), sort_keys=True, default=str))
        return self.root / f"{self.clip_key(video)}.{model.name}-{model.num_vertices}-{settings}.{kind}.npz"

    def tracks(self, videos: list[Path], progress: bool = True, world: World = World()) -> list[FaceTrack]:
        """Each clip's `track_video` (default settings, as every pretrainer tracks)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for i in tqdm(world.own(len(videos)), desc="tracking corpus", unit="clip", disable=not progress):
            path = self.track_path(videos[i])
            if not path.exists():
                track_video(videos[i], TrackConfig(), progress=False).save(path)
        world.barrier()
        return [FaceTrack.load(self.track_path(video)) for video in videos]

    def reconstructions(
        self,
        videos: list[Path],
        model: FaceModel,
        fit: FitConfig,
        device: torch.device | str = "cpu",
        progress: bool = True,
        world: World = World(),
    ) -> list[Reconstruction]:
        """Each clip's `reconstruct_clip` with `model` and `fit`, from its cached track (a clip
        whose reconstruction is cached is not tracked again)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for i in tqdm(world.own(len(videos)), desc="reconstructing corpus", unit="clip", disable=not progress):
            path = self.reconstruction_path(videos[i], model, fit)
            if not path.exists():
                (track,) = self.tracks([videos[i]], progress=False)
                recon, _ = reconstruct_clip(videos[i], model, fit, track=track, device=device, progress=progress)
                recon.save(path)
        world.barrier()
        return [Reconstruction.load(self.reconstruction_path(video, model, fit)) for video in videos]
