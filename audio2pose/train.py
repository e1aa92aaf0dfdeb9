"""Training audio2pose: on a corpus (`talkface pretrain audio2pose`) and per actor (fine-tuning).

Targets are the 3D reconstructions of the clips (expression, angles, translation per frame);
inputs are the MFCC windows of the clips' own soundtracks. Training draws random windows of
`seq_len` consecutive frames (Yi et al.: 16) and runs the LSTM over each from a zero state; at
prediction time the LSTM runs over the whole utterance.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio2pose.features import FeatureConfig, audio_features, load_speech
from audio2pose.model import (
    POSE_AMPLITUDE,
    POSE_DIM,
    AudioToPose,
    AudioToPoseConfig,
    LossWeights,
    Motion,
    motion_loss,
    target_statistics,
)
from recon3d.corpus import CorpusCache
from recon3d.distributed import World
from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.fit import FitConfig
from recon3d.pretrain import corpus_videos
from recon3d.reconstruct import Reconstruction
from recon3d.video import atomic_path

log = logging.getLogger("talkface")


@dataclass
class TrainConfig:
    """The optimisation, shared by corpus training and per-actor fine-tuning."""

    steps: int = 600
    """Optimisation steps."""
    batch_size: int = 16
    """Windows per step."""
    seq_len: int = 32
    """Frames per training window (shorter clips use their whole length)."""
    lr: float = 1e-3
    """Learning rate."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of Yi et al."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW)."""
    weights: LossWeights = field(default_factory=LossWeights)
    seed: int = 0
    """Random seed of the initialisation and the windows."""


@dataclass
class MotionClip:
    """One clip's per-frame MFCC windows and reconstructed [exp | angle | trans] targets."""

    name: str
    features: np.ndarray
    """(T, 28, C) float32 feature windows."""
    targets: np.ndarray
    """(T, exp_dim + 6) float32, raw coefficients."""

    @property
    def num_frames(self) -> int:
        return len(self.targets)

    def split(self, fraction: float) -> tuple[MotionClip, MotionClip]:
        """The first `fraction` of the frames and the rest."""
        cut = int(round(fraction * self.num_frames))
        return (
            MotionClip(self.name, self.features[:cut], self.targets[:cut]),
            MotionClip(self.name, self.features[cut:], self.targets[cut:]),
        )


def reconstruction_targets(recon: Reconstruction) -> np.ndarray:
    """`(T, exp_dim + 6)` [exp | angle | trans] rows of a reconstruction."""
    layout = recon.layout
    coeffs = recon.coeffs
    return np.concatenate([coeffs[:, layout.slice(name)] for name in ("exp", "angle", "trans")], axis=1).astype(
        np.float32
    )


def motion_clip(
    video: str | os.PathLike, recon: Reconstruction, features: FeatureConfig = FeatureConfig()
) -> MotionClip:
    """A reconstructed clip with the features of its own soundtrack, frame for frame."""
    audio, num_frames = load_speech(video, recon.num_frames, features)
    return MotionClip(Path(video).stem, audio_features(audio, num_frames, features), reconstruction_targets(recon))


def normalized_targets(clip: MotionClip, reference: MotionClip, device: torch.device) -> torch.Tensor:
    """`clip`'s targets in the units of `reference`'s statistics (its own, or its clip's training part)."""
    mean, std = target_statistics(torch.from_numpy(reference.targets).to(device), reference.targets.shape[1] - POSE_DIM)
    return (torch.from_numpy(clip.targets).to(device) - mean) / std


class WindowSampler:
    """Random training windows over several clips, each normalised by its own statistics."""

    def __init__(self, clips: list[MotionClip], seq_len: int, device: torch.device) -> None:
        if not clips:
            raise ValueError("no training clips")
        self.seq_len = min([seq_len] + [clip.num_frames for clip in clips])
        self.features = [torch.from_numpy(clip.features).to(device) for clip in clips]
        self.targets = [normalized_targets(clip, clip, device) for clip in clips]
        starts = torch.tensor([clip.num_frames - self.seq_len + 1 for clip in clips], dtype=torch.float64)
        self.weights = starts / starts.sum()
        self.starts = starts.long()

    def sample(
        self, batch_size: int, generator: torch.Generator, rows: slice = slice(None)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` windows drawn from `generator`, of which `rows` are returned (a process's
        share of a global batch: the draws do not depend on it)."""
        clip_ids = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        offsets = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * self.starts[clip_ids]).long()
        clip_ids, offsets = clip_ids[rows], offsets[rows]
        span = torch.arange(self.seq_len)
        features = torch.stack([self.features[c][o + span] for c, o in zip(clip_ids.tolist(), offsets.tolist())])
        targets = torch.stack([self.targets[c][o + span] for c, o in zip(clip_ids.tolist(), offsets.tolist())])
        return features, targets


def train_steps(
    model: AudioToPose,
    sampler: WindowSampler,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    start: int = 0,
    progress: bool = True,
    on_step=None,
    world: World = World(),
) -> dict[str, float]:
    """Steps `start`..`config.steps` of training; returns the mean loss terms of the last 10% of
    steps. Each step is seeded from (seed, step), so a resumed run repeats an uninterrupted one.
    `on_step(step, terms)` is called after every step (1-based step numbers). Over several
    processes (`world`), each takes its share of every batch and the terms are the global batch's."""
    world.check_batch(config.batch_size)
    network = world.wrap(model)
    network.train()
    sums: dict[str, float] = {}
    tail = max(1, config.steps // 10)
    bar = tqdm(
        range(start, config.steps),
        desc="audio2pose",
        unit="step",
        disable=not progress,
        initial=start,
        total=config.steps,
        leave=False,
    )
    for step in bar:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        torch.manual_seed(world.seed(config.seed * 1_000_003 + step))  # dropout
        features, targets = sampler.sample(config.batch_size, generator, world.share(config.batch_size))
        terms = world.batch_mean(motion_loss(network(features), targets, model.exp_dim, config.weights), len(features))
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        values = {name: value.item() for name, value in terms.items()}
        if step >= config.steps - tail:
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value / tail
        bar.set_postfix(loss=f"{values['total']:.4g}")
        if on_step is not None:
            on_step(step + 1, values)
    return sums


def make_optimizer(model: AudioToPose, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


@dataclass
class FinetuneConfig:
    """Per-actor training: from the general model when there is one, else from scratch."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=150, lr=3e-4, weight_decay=0.01))
    scratch: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, lr=1e-3, weight_decay=0.01))
    """Used instead of `train` when there is no general model."""
    model: AudioToPoseConfig = field(default_factory=AudioToPoseConfig)
    """Architecture when training from scratch (a general model brings its own)."""


def finetune(
    clip: MotionClip,
    general: AudioToPose | None = None,
    config: FinetuneConfig = FinetuneConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> AudioToPose:
    """The actor's model: `general` (copied, not modified) or a new network trained on the actor's
    clip, with the actor's statistics as its style."""
    device = torch.device(device)
    if general is not None:
        model = AudioToPose(general.exp_dim, general.config).to(device)
        model.load_state_dict(general.state_dict())
        train = config.train
    else:
        torch.manual_seed(config.scratch.seed)
        model = AudioToPose(clip.targets.shape[1] - POSE_DIM, config.model).to(device)
        train = config.scratch
    if model.output_dim != clip.targets.shape[1]:
        raise ValueError(
            f"general model predicts {model.exp_dim} expression coefficients, "
            f"the clip has {clip.targets.shape[1] - POSE_DIM}"
        )
    targets = torch.from_numpy(clip.targets).to(device)
    model.set_style(*target_statistics(targets, model.exp_dim))
    sampler = WindowSampler([clip], train.seq_len, device)
    train_steps(model, sampler, make_optimizer(model, train), train, progress=progress)
    model.eval()
    return model


@torch.no_grad()
def validation_loss(
    model: AudioToPose, clips: list[MotionClip], heads: list[MotionClip], weights: LossWeights
) -> dict[str, float]:
    """Mean loss terms over whole held-out segments, each normalised by its clip's training part."""
    model.eval()
    device = model.target_mean.device
    sums: dict[str, float] = {}
    for clip, head in zip(clips, heads):
        targets = normalized_targets(clip, head, device)
        outputs = model(torch.from_numpy(clip.features).to(device)[None])[0]
        for name, value in motion_loss(outputs[None], targets[None], model.exp_dim, weights).items():
            sums[name] = sums.get(name, 0.0) + value.item() / len(clips)
    model.train()
    return sums


@dataclass
class PretrainAudio2PoseConfig:
    """Corpus training of the general model."""

    model: AudioToPoseConfig = field(default_factory=AudioToPoseConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=600, lr=1e-3, weight_decay=0.01))
    """Short: on the 20 shared clips the held-out loss is lowest after ~100-300 steps."""
    val_fraction: float = 0.3
    """Tail of each clip held out (the per-actor protocol also tests on the last 30%)."""
    log_every: int = 100
    """Steps between loss-curve records (training and held-out loss)."""
    fit: FitConfig = field(default_factory=FitConfig)
    """Reconstruction of the corpus clips (the targets)."""


def write_history(path: Path, history: list[dict]) -> None:
    """The loss curves as CSV, one row per record."""
    names = list(dict.fromkeys(key for record in history for key in record))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(history)


def pretrain_audio2pose(
    corpus: str | os.PathLike,
    out_dir: str | os.PathLike,
    face_model: FaceModel,
    config: PretrainAudio2PoseConfig = PretrainAudio2PoseConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
    world: World = World(),
    cache: CorpusCache | None = None,
) -> dict:
    """Trains the general model on every clip of `corpus` (reconstructed once into `cache`,
    default the shared corpus cache); writes OUT/audio2pose.pt (weights, optimizer state and
    history: a rerun resumes) and OUT/history.csv. Returns the last record.
    Over several processes (`world`, see `recon3d.distributed`) they share each batch and rank 0
    writes the files and scores the held-out part."""
    device = torch.device(device)
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / "audio2pose.pt"
    videos = corpus_videos(corpus)
    world.check_batch(config.train.batch_size)
    recons = (cache or CorpusCache()).reconstructions(videos, face_model, config.fit, device, progress, world)
    clips = [motion_clip(video, recon, config.model.features) for video, recon in zip(videos, recons)]
    heads, tails = zip(*(clip.split(1 - config.val_fraction) for clip in clips))
    log.info(
        "corpus: %d clips, %d training and %d held-out frames",
        len(clips),
        sum(h.num_frames for h in heads),
        sum(t.num_frames for t in tails),
    )

    train = config.train
    torch.manual_seed(train.seed)
    model = AudioToPose(face_model.layout.exp_dim, config.model).to(device)
    # The general model's own style (used only without fine-tuning): the corpus average.
    stats = [target_statistics(torch.from_numpy(h.targets), model.exp_dim) for h in heads]
    model.set_style(torch.stack([m for m, _ in stats]).mean(0), torch.stack([s for _, s in stats]).mean(0))
    optimizer = make_optimizer(model, train)
    history: list[dict] = []
    start = 0
    if checkpoint_path.exists():
        saved, checkpoint = AudioToPose.load_checkpoint(checkpoint_path, face_model.name)
        if saved.config != config.model:
            raise InputError(
                f"{checkpoint_path}: was trained with other network settings; give the same options "
                "to resume, or a new output folder"
            )
        model.load_state_dict(saved.state_dict())
        optimizer.load_state_dict(checkpoint["optimizer"])
        history = json.loads(checkpoint["history"])
        start = int(checkpoint["step"])
        log.info("resuming %s at step %d", checkpoint_path, start)

    sampler = WindowSampler(list(heads), train.seq_len, device)
    window: dict[str, float] = {}
    val_tails = [t for t in tails if t.num_frames > 1]
    val_heads = [h for h, t in zip(heads, tails) if t.num_frames > 1]

    def on_step(step: int, terms: dict[str, float]) -> None:
        for name, value in terms.items():
            window[name] = window.get(name, 0.0) + value
        if step % config.log_every and step != train.steps:
            return
        count = step - (history[-1]["step"] if history else 0)
        record = {"step": step, **{f"train_{k}": v / count for k, v in window.items()}}
        window.clear()
        history.append(record)
        if not world.is_main:
            return
        record.update({f"val_{k}": v for k, v in validation_loss(model, val_tails, val_heads, train.weights).items()})
        log.info(
            "step %d: loss %.4g (exp %.3g, pose %.3g), held-out %.4g (exp %.3g, pose %.3g)",
            step,
            record["train_total"],
            record["train_exp"],
            record["train_pose"],
            record.get("val_total", float("nan")),
            record.get("val_exp", float("nan")),
            record.get("val_pose", float("nan")),
        )
        model.save(
            checkpoint_path,
            face_model.name,
            {
                "optimizer": optimizer.state_dict(),
                "history": json.dumps(history),
                "step": step,
                "train": json.dumps(asdict(config)),
            },
        )
        write_history(out_dir / "history.csv", history)

    if start < train.steps:
        train_steps(model, sampler, optimizer, train, start=start, progress=progress, on_step=on_step, world=world)
    return history[-1] if history else {}


def predict_motion(
    model: AudioToPose,
    speech: str | os.PathLike,
    num_frames: int | None = None,
    pose_amplitude: float | None = POSE_AMPLITUDE,
) -> Motion:
    """The actor's expression and head pose for a speech (or video) file (`AudioToPose.predict`)."""
    audio, num_frames = load_speech(speech, num_frames, model.config.features)
    return model.predict(audio_features(audio, num_frames, model.config.features), pose_amplitude)
