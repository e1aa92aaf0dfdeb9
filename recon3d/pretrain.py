"""Training the coefficient regressor on a corpus of talking-head clips (`talkface pretrain recon`).

Each clip is tracked (tracks in the corpus cache, `recon3d.corpus`) and its stable crop frames become
training images; the last `val_fraction` of every clip is held out to report the landmark error
of the regressor alone. Checkpoints are written every epoch with the optimizer state, so a
killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from recon3d.corpus import CorpusCache
from recon3d.distributed import World, sync_batch_norm
from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.fit import (
    FitConfig,
    initial_pose,
    landmark_error,
    landmark_loss,
    model_landmarks,
    photometric_sums,
    prior_loss,
    render_fit,
)
from recon3d.reconstruct import load_crops
from recon3d.regressor import CoeffRegressor, RegressorConfig
from render.camera import PerspectiveCamera

log = logging.getLogger("talkface")

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


@dataclass
class PretrainReconConfig:
    """Settings of regressor training."""

    regressor: RegressorConfig = field(default_factory=RegressorConfig)
    epochs: int = 10
    """Passes over the training frames."""
    batch_size: int = 32
    """Frames per batch."""
    lr: float = 1e-3
    """Adam learning rate (from scratch, so higher than Deep3DFaceRecon's fine-tuning 1e-4)."""
    render_size: int = 64
    """Side of the photometric renders, pixels (small: the loss mostly teaches lighting)."""
    val_fraction: float = 0.1
    """Tail of each clip held out for validation."""
    max_frames_per_clip: int = 0
    """Cap on training frames taken (evenly) from each clip; 0 = all."""
    seed: int = 0
    """Random seed of the initialisation and the batches."""
    fit: FitConfig = field(default_factory=FitConfig)
    """Loss weights (shared with the fitting)."""


def corpus_videos(corpus: str | os.PathLike) -> list[Path]:
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise InputError(f"{corpus}: corpus folder not found; give a folder of talking-head videos")
    videos = sorted(p for p in corpus.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise InputError(f"{corpus}: no videos ({', '.join(VIDEO_SUFFIXES)}) in the corpus folder")
    return videos


def load_corpus(
    videos: list[Path], cache: CorpusCache, image_size: int, progress: bool = True, world: World = World()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All clips' crops at `image_size` (N, 3, S, S) uint8, landmarks (N, 68, 2) in those pixels,
    and (N,) clip index; the tracks come from the corpus cache."""
    tracks = cache.tracks(videos, progress, world)
    images, landmarks, clip_ids = [], [], []
    clips = tqdm(list(zip(videos, tracks)), desc="corpus", unit="clip", disable=not progress)
    for i, (video, track) in enumerate(clips):
        crops = torch.from_numpy(load_crops(video, track, progress)).permute(0, 3, 1, 2)
        crops = F.interpolate(crops.float(), size=(image_size, image_size), mode="area").round().byte()
        images.append(crops)
        landmarks.append(
            torch.from_numpy(track.crop.frame_to_crop(track.ibug68) * image_size / track.crop.size).float()
        )
        clip_ids.append(torch.full((len(crops),), i))
    return torch.cat(images), torch.cat(landmarks), torch.cat(clip_ids)


def split_frames(clip_ids: torch.Tensor, val_fraction: float, max_per_clip: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip: the head for training (evenly thinned to `max_per_clip`), the tail for validation."""
    train, val = [], []
    for clip in clip_ids.unique():
        idx = (clip_ids == clip).nonzero()[:, 0]
        cut = len(idx) - max(1, int(round(val_fraction * len(idx)))) if len(idx) > 1 else len(idx)
        head = idx[:cut]
        if max_per_clip and len(head) > max_per_clip:
            head = head[torch.linspace(0, len(head) - 1, max_per_clip).round().long()]
        train.append(head)
        val.append(idx[cut:])
    return torch.cat(train), torch.cat(val)


class RegressorTrainer:
    """Weakly supervised training of a `CoeffRegressor` for one face model.

    Over several processes (`world`, see `recon3d.distributed`) the regressor is a DDP replica
    with batch norm over the global batch, each process takes its share of every batch and the
    losses are the global batch's; rank 0 scores the held-out frames and writes the checkpoint.
    An epoch's last batch, when it has fewer frames than there are processes, is left out."""

    def __init__(
        self, model: FaceModel, config: PretrainReconConfig, device: torch.device, world: World = World()
    ) -> None:
        self.model = model.subset("face").to(device)
        self.full_model = model
        self.config = config
        self.device = device
        self.world = world
        self.skin = self.model.region_faces("skin")
        self.landmark_model = self.model.subset("landmarks")
        self.albedo = self.model.albedo(None)

    def losses(self, regressor: nn.Module, images: torch.Tensor, landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of a batch (this process's share of it), over the global batch."""
        cfg = self.config.fit
        images = images.float() / 255
        coeffs = regressor(images)
        camera = PerspectiveCamera.deep3d(images.shape[-1])
        terms = self.world.batch_mean(
            {
                "landmark": cfg.w_landmark
                * landmark_loss(model_landmarks(self.landmark_model, coeffs, camera), landmarks, camera.image_size[0]),
                "prior": prior_loss(self.model, coeffs, cfg),
            },
            len(images),
        )
        albedo = self.model.albedo(coeffs.tex) if coeffs.tex.shape[-1] else self.albedo
        size = self.config.render_size
        rendered = render_fit(self.model, coeffs, albedo, camera.resized(size), self.skin)
        target = F.interpolate(images, size=(size, size), mode="area")
        total, area = self.world.sum(photometric_sums(rendered.image, target, rendered.mask))
        photo = cfg.w_photometric * (total / area.clamp(min=1.0))  # the mean over the skin pixels of all shares
        lmk, prior = terms["landmark"], terms["prior"]
        return {"landmark": lmk, "photometric": photo, "prior": prior, "total": lmk + photo + prior}

    @torch.no_grad()
    def validate(self, regressor: CoeffRegressor, images: torch.Tensor, landmarks: torch.Tensor) -> float:
        """Mean landmark error (/ inter-ocular) of the regressor alone on held-out frames."""
        regressor.eval()
        camera = PerspectiveCamera.deep3d(images.shape[-1])
        errors = []
        for idx in torch.arange(len(images)).split(64):
            coeffs = regressor(images[idx].to(self.device).float() / 255)
            errors.append(
                landmark_error(model_landmarks(self.landmark_model, coeffs, camera), landmarks[idx].to(self.device))
            )
        regressor.train()
        return float(torch.cat(errors).mean()) if errors else float("nan")

    def train(
        self,
        corpus: str | os.PathLike,
        out_dir: str | os.PathLike,
        progress: bool = True,
        cache: CorpusCache | None = None,
    ) -> dict:
        """Trains on every clip of `corpus` (tracks from `cache`, default the shared corpus
        cache); writes OUT/regressor.pt every epoch (a rerun resumes). Returns the last record."""
        cfg = self.config
        out_dir = Path(out_dir)
        checkpoint_path = out_dir / "regressor.pt"
        videos = corpus_videos(corpus)
        world = self.world
        world.check_batch(cfg.batch_size)
        images, landmarks, clip_ids = load_corpus(
            videos, cache or CorpusCache(), cfg.regressor.image_size, progress, world
        )
        train_idx, val_idx = split_frames(clip_ids, cfg.val_fraction, cfg.max_frames_per_clip)
        log.info("corpus: %d clips, %d training and %d held-out frames", len(videos), len(train_idx), len(val_idx))

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        regressor = sync_batch_norm(CoeffRegressor(self.model.layout, cfg.regressor).to(self.device), world)
        camera = PerspectiveCamera.deep3d(cfg.regressor.image_size)
        regressor.trans_offset.copy_(initial_pose(self.model, landmarks[train_idx].to(self.device), camera).mean(0))
        optimizer = torch.optim.Adam(regressor.parameters(), lr=cfg.lr)
        history: list[dict] = []
        start_epoch = 0
        if checkpoint_path.exists():
            state = torch.load(checkpoint_path, map_location=self.device, weights_only=True)
            regressor.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            history = json.loads(state["history"])
            start_epoch = len(history)
            log.info("resuming %s at epoch %d", checkpoint_path, start_epoch + 1)
        network = world.wrap(regressor)
        for epoch in range(start_epoch, cfg.epochs):
            # Seeded per epoch, so a resumed run shuffles exactly as an uninterrupted one.
            generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            sums: dict[str, float] = {}
            batches = [idx for idx in order.split(cfg.batch_size) if len(idx) >= world.size]
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress, leave=False)
            for idx in bar:
                idx = idx[world.share(len(idx))]
                losses = self.losses(network, images[idx].to(self.device), landmarks[idx].to(self.device))
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                optimizer.step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value.item() / len(batches)
                bar.set_postfix(loss=f"{losses['total'].item():.4g}")
            record = {"epoch": epoch + 1, **sums}
            history.append(record)
            if not world.is_main:
                continue
            record["val_landmark_error"] = self.validate(regressor, images[val_idx], landmarks[val_idx])
            log.info(
                "epoch %d: loss %.4g (landmark %.3g, photometric %.3g), held-out landmark error %.2f%%",
                epoch + 1,
                sums["total"],
                sums["landmark"],
                sums["photometric"],
                100 * record["val_landmark_error"],
            )
            regressor.save(
                checkpoint_path,
                self.full_model,
                {"optimizer": optimizer.state_dict(), "history": json.dumps(history), "train": json.dumps(asdict(cfg))},
            )
        return history[-1] if history else {}
