"""Training of the memory-augmented GAN: on a corpus (`pretrain_refiner`) or on one actor
(`finetune_refiner`, inside `personalize`).

One step, on a batch of rendered windows, their real middle frames and those frames' identity
features (Yi et al.'s losses, DESIGN.md):
- discriminator: least-squares GAN loss (real patches -> 1, refined -> 0), halved;
- generator: adversarial + 100 L1 to the real frame + `mask` * mean(mask) + 1e-5 TV(mask); it is
  driven by the real frame's identity (MemoPainter's scheme);
- query encoder: the memory's threshold triplet loss; then the batch is written into the memory.
Least squares rather than the log loss: with a discriminator this small it does not saturate, so
the generator keeps a gradient on a 2-core budget of a few thousand steps.

A run keeps one checkpoint in its work folder (networks, memory, both optimizers, the sampler's
state, the loss history), written every `checkpoint_every` steps: rerunning resumes from it and
gives the same result as an uninterrupted run. `samples/step_NNNNNN.png` grids (render / refined /
mask / real for a few fixed frames) are written every `sample_every` steps for a person to look at.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from recon3d.checkpoint import read_checkpoint, write_checkpoint
from recon3d.corpus import CorpusCache
from recon3d.distributed import World, sync_batch_norm
from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.fit import FitConfig
from recon3d.pretrain import corpus_videos
from recon3d.reconstruct import load_crops
from recon3d.video import atomic_path
from refine.data import RefinePairs, clip_pairs, face_region
from refine.memory import MemoryConfig
from refine.metrics import face_box, psnr
from refine.model import Refiner, stack_window, to_tensor, to_uint8
from refine.networks import NetworkConfig, PatchDiscriminator

log = logging.getLogger("talkface")

CHECKPOINT_NAME = "refine_train.pt"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class LossWeights:
    """Yi et al.'s weights; `mask` is theirs for fine-tuning."""

    adversarial: float = 1.0
    l1: float = 100.0
    mask: float = 2.0
    """Weight of mean(mask): without it the mask saturates at 1 and the render passes unchanged."""
    tv: float = 1e-5
    """Weight of the mask's total variation (summed over pixels): a smooth mask, no speckle."""


@dataclass(frozen=True)
class RefineTrainConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    steps: int = 1500
    """Training steps of the generator and the discriminator."""
    batch_size: int = 4
    """Frames per step."""
    lr: float = 1e-4
    beta1: float = 0.5
    weights: LossWeights = field(default_factory=LossWeights)
    seed: int = 0
    """Random seed of the initialisation and the batches."""
    checkpoint_every: int = 250
    sample_every: int = 500
    sample_frames: int = 4
    log_every: int = 50
    """Steps between loss-curve records."""
    flip: bool = True
    """Mirror half the training samples (render window and real frame together): a face and its
    mirror image are equally plausible, and an actor's clip is short."""


class RefineTrainer:
    """The networks, optimizers and sampler of one training run.

    Over several processes (`world`, see `recon3d.distributed`) the networks are DDP replicas,
    each process takes its share of every batch, the losses are the global batch's and every
    process writes the whole batch into its copy of the memory, so the copies stay equal."""

    def __init__(
        self, refiner: Refiner, config: RefineTrainConfig, device: torch.device, world: World = World()
    ) -> None:
        self.config, self.device, self.world = config, device, world
        self.refiner = refiner.to(device).train()
        self.discriminator = PatchDiscriminator(refiner.network_config).to(device).train()
        sync_batch_norm(self.refiner.encoder, world)
        self.generator, self.encoder = world.wrap(self.refiner.generator), world.wrap(self.refiner.encoder)
        self.critic = world.wrap(self.discriminator)
        betas = (config.beta1, 0.999)
        self.g_optimizer = torch.optim.Adam(
            [*self.refiner.generator.parameters(), *self.refiner.encoder.parameters()], lr=config.lr, betas=betas
        )
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.rng = np.random.default_rng(config.seed)

    def batch(self, pairs: RefinePairs, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rendered windows, real middle frames, their identity features) of `frames`, the
        global batch: this process's share of it."""
        mirrored = self.rng.random(len(frames)) < 0.5 if self.config.flip else np.zeros(len(frames), bool)
        rows = self.world.share(len(frames))
        frames, mirrored = frames[rows], mirrored[rows]
        index = pairs.window_indices(frames, self.refiner.window)
        renders, reals = pairs.renders[index], pairs.reals[frames]
        if self.config.flip:
            renders[mirrored], reals[mirrored] = renders[mirrored, :, :, ::-1], reals[mirrored, :, ::-1]
        window = stack_window(to_tensor(renders, self.device))
        return window, to_tensor(reals, self.device), torch.from_numpy(pairs.identity[frames]).to(self.device)

    def step(self, window: torch.Tensor, real: torch.Tensor, identity: torch.Tensor) -> dict[str, float]:
        """One step on a batch (this process's share of it); returns the global batch's loss terms."""
        weights, world, rows = self.config.weights, self.world, len(window)
        refined, _, mask = self.generator(window, identity)

        self.d_optimizer.zero_grad(set_to_none=True)
        d_terms = world.batch_mean(
            {
                "real": (self.critic(window, real) - 1).square().mean(),
                "fake": self.critic(window, refined.detach()).square().mean(),
            },
            rows,
        )
        d_loss = 0.5 * (d_terms["real"] + d_terms["fake"])
        d_loss.backward()
        self.d_optimizer.step()

        self.g_optimizer.zero_grad(set_to_none=True)
        tv = (
            (mask[..., 1:, :] - mask[..., :-1, :]).abs().sum((1, 2, 3))
            + (mask[..., :, 1:] - mask[..., :, :-1]).abs().sum((1, 2, 3))
        ).mean()
        terms = world.batch_mean(
            {
                "adversarial": (self.critic(window, refined) - 1).square().mean(),
                "l1": (refined - real).abs().mean(),
                "mask": mask.mean(),
                "tv": tv,
            },
            rows,
        )
        queries = self.encoder(window)
        triplet = self.refiner.memory.triplet_loss(queries, identity, world)
        g_loss = (
            weights.adversarial * terms["adversarial"]
            + weights.l1 * terms["l1"]
            + weights.mask * terms["mask"]
            + weights.tv * terms["tv"]
            + triplet
        )
        g_loss.backward()
        self.g_optimizer.step()
        self.refiner.memory.write(world.gather(queries), world.gather(identity))
        return {
            "d": d_loss.item(),
            **{name: value.item() for name, value in terms.items()},
            "triplet": triplet.item(),
            "total": g_loss.item(),
        }

    def state(self, step: int, history: list[dict]) -> dict:
        return {
            "format_version": CHECKPOINT_VERSION,
            "config": json.dumps(asdict(self.config)),
            "step": step,
            "history": json.dumps(history),
            "refiner": self.refiner.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
        }

    def restore(self, checkpoint: dict) -> tuple[int, list[dict]]:
        self.refiner.load_state_dict(checkpoint["refiner"])
        self.discriminator.load_state_dict(checkpoint["discriminator"])
        self.g_optimizer.load_state_dict(checkpoint["g_optimizer"])
        self.d_optimizer.load_state_dict(checkpoint["d_optimizer"])
        self.rng.bit_generator.state = json.loads(checkpoint["rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        return int(checkpoint["step"]), json.loads(checkpoint["history"])


def refinement_psnr(refiner: Refiner, pairs: RefinePairs, batch_frames: int = 16) -> tuple[float, float]:
    """Mean face-crop PSNR (dB) of the raw renders and of their refinement, against the real frames."""
    refined = refine_pairs(refiner, pairs, batch_frames)
    raw = [psnr(r, real, face_box(p, pairs.size)) for r, real, p in zip(pairs.renders, pairs.reals, pairs.landmarks)]
    out = [psnr(r, real, face_box(p, pairs.size)) for r, real, p in zip(refined, pairs.reals, pairs.landmarks)]
    return float(np.mean(raw)), float(np.mean(out))


def refine_pairs(refiner: Refiner, pairs: RefinePairs, batch_frames: int = 16) -> np.ndarray:
    """The refinement of every render of `pairs` (memory read, as at inference)."""
    device = next(refiner.parameters()).device
    was_training = refiner.training
    refiner.eval()
    out = []
    with torch.no_grad():
        for frames in np.array_split(np.arange(len(pairs)), max(1, len(pairs) // batch_frames)):
            window = stack_window(to_tensor(pairs.renders[pairs.window_indices(frames, refiner.window)], device))
            out.append(to_uint8(refiner(window)[0]))
    refiner.train(was_training)
    return np.concatenate(out)


def sample_grid(refiner: Refiner, pairs: RefinePairs, frames: np.ndarray) -> np.ndarray:
    """(4 S, len(frames) S, 3) uint8: rows render / refined / mask / real."""
    device = next(refiner.parameters()).device
    was_training = refiner.training
    refiner.eval()
    with torch.no_grad():
        window = stack_window(to_tensor(pairs.renders[pairs.window_indices(frames, refiner.window)], device))
        refined, _, mask = refiner(window)
    refiner.train(was_training)
    mask = np.repeat((mask.detach().cpu().numpy()[:, 0, :, :, None] * 255).round().astype(np.uint8), 3, axis=3)
    rows = [pairs.renders[frames], to_uint8(refined), mask, pairs.reals[frames]]
    return np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)


def write_image(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def _resumable(settings: dict) -> str:
    """What a run resumes only with the same of: everything but the number of steps (more extend it)."""
    return json.dumps({k: v for k, v in settings.items() if k != "steps"}, sort_keys=True)


def train_refiner(
    pairs: RefinePairs,
    work: str | os.PathLike,
    config: RefineTrainConfig = RefineTrainConfig(),
    init: Refiner | None = None,
    held_out: RefinePairs | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    world: World = World(),
) -> tuple[Refiner, list[dict]]:
    """Trains a refiner (from `init`, else from scratch) on `pairs` for `config.steps` steps, with
    its checkpoint and sample grids in `work` (a rerun resumes). Returns it and its loss history
    (a record every `log_every` steps; with `held_out` pairs, their raw and refined PSNR at every
    checkpoint). Over several processes (`world`) they share each batch; rank 0 scores the
    held-out pairs and writes the files."""
    device, work = torch.device(device), Path(work)
    if pairs.size != config.network.size:
        raise ValueError(f"training pairs are {pairs.size} px, the network {config.network.size} px")
    world.check_batch(config.batch_size)
    torch.manual_seed(config.seed)
    refiner = init if init is not None else Refiner(config.network, config.memory)
    trainer = RefineTrainer(refiner, config, device, world)
    checkpoint_path = work / CHECKPOINT_NAME
    start, history = 0, []
    if checkpoint_path.exists():
        checkpoint = read_checkpoint(
            checkpoint_path, "refine training", CHECKPOINT_VERSION, f"delete {work} to start the training again"
        )
        if _resumable(json.loads(checkpoint["config"])) != _resumable(asdict(config)):
            raise InputError(
                f"{checkpoint_path}: was trained with other settings; give the same options to resume, or delete {work}"
            )
        start, history = trainer.restore(checkpoint)
        log.info("refine: resuming %s at step %d", checkpoint_path, start)
    sample_frames = np.linspace(0, len(pairs) - 1, min(config.sample_frames, len(pairs))).round().astype(int)
    sums: dict[str, float] = {}
    bar = tqdm(
        range(start, config.steps),
        initial=start,
        total=config.steps,
        desc="refine",
        unit="step",
        disable=not progress,
        leave=False,
    )
    for step in bar:
        frames = trainer.rng.integers(0, len(pairs), config.batch_size)
        for name, value in trainer.step(*trainer.batch(pairs, frames)).items():
            sums[name] = sums.get(name, 0.0) + value
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            count = done - (history[-1]["step"] if history else start)
            history.append({"step": done, **{name: value / count for name, value in sums.items()}})
            sums.clear()
            bar.set_postfix(l1=f"{history[-1]['l1']:.3f}", mask=f"{history[-1]['mask']:.2f}")
        if not world.is_main:
            continue
        if done % config.checkpoint_every == 0 or done == config.steps:
            if held_out is not None and len(held_out):
                raw, refined = refinement_psnr(trainer.refiner, held_out)
                history[-1].update(held_out_raw_psnr=raw, held_out_psnr=refined)
            log.info(
                "refine step %d: %s", done, ", ".join(f"{k} {v:.4g}" for k, v in history[-1].items() if k != "step")
            )
            write_checkpoint(checkpoint_path, trainer.state(done, history))
        if done % config.sample_every == 0 or done == config.steps:
            write_image(work / "samples" / f"step_{done:06d}.png", sample_grid(trainer.refiner, pairs, sample_frames))
    bar.close()
    return trainer.refiner.eval(), history


GENERAL_NAME = "refiner.pt"


def corpus_pairs(
    videos: list[Path],
    face_model: FaceModel,
    size: int,
    fit: FitConfig,
    val_fraction: float,
    cache: CorpusCache,
    device: torch.device,
    progress: bool = True,
    world: World = World(),
) -> tuple[RefinePairs, RefinePairs]:
    """Training pairs (each clip's head) and held-out pairs (each clip's last `val_fraction`) of a
    corpus, each clip's track and reconstruction from the corpus cache, its render pairs made once
    (cached beside them; over several processes each makes its share of the missing clips, then
    all read every clip's file)."""
    recons = cache.reconstructions(videos, face_model, fit, device, progress, world)
    paths = [cache.reconstruction_path(video, face_model, fit, f"pairs{size}-{val_fraction}") for video in videos]
    for i in tqdm(world.own(len(videos)), desc="corpus pairs", unit="clip", disable=not progress):
        video, path = videos[i], paths[i]
        if not path.exists():
            (track,) = cache.tracks([video], progress=False)
            crops = load_crops(video, track, False)
            landmarks = track.crop.frame_to_crop(track.ibug68)
            cut = int(round((1 - val_fraction) * len(crops)))
            region = face_region(landmarks[:cut], crops.shape[1], size)
            pairs = clip_pairs(recons[i], face_model, crops, landmarks, region, device=device)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **{name: getattr(pairs, name) for name in ("renders", "reals", "landmarks", "identity")})
    world.barrier()
    heads, tails = [], []
    for path in paths:
        with np.load(path) as data:
            pairs = RefinePairs(
                data["renders"],
                data["reals"],
                data["landmarks"],
                data["identity"],
                np.zeros(len(data["renders"]), np.int64),
            )
        cut = int(round((1 - val_fraction) * len(pairs)))
        heads.append(pairs.subset(slice(0, cut)))
        tails.append(pairs.subset(slice(cut, None)))
    return RefinePairs.concatenate(heads), RefinePairs.concatenate(tails)


def pretrain_refiner(
    corpus: str | os.PathLike,
    out_dir: str | os.PathLike,
    face_model: FaceModel,
    config: RefineTrainConfig = RefineTrainConfig(),
    fit: FitConfig = FitConfig(),
    val_fraction: float = 0.3,
    device: torch.device | str = "cpu",
    progress: bool = True,
    world: World = World(),
    cache: CorpusCache | None = None,
) -> tuple[Refiner, list[dict]]:
    """Trains the general refiner on every clip of `corpus` (the last `val_fraction` of each held
    out and scored at every checkpoint; clips tracked and reconstructed once into `cache`, default
    the shared corpus cache); writes OUT/refiner.pt (`--refine-init` of `personalize`),
    with the training run (resumable) and sample grids in OUT. Over several processes (`world`,
    see `recon3d.distributed`) they share each batch and rank 0 writes the files."""
    device, out_dir = torch.device(device), Path(out_dir)
    videos = corpus_videos(corpus)
    world.check_batch(config.batch_size)
    train, held_out = corpus_pairs(
        videos, face_model, config.network.size, fit, val_fraction, cache or CorpusCache(), device, progress, world
    )
    log.info("refine corpus: %d clips, %d training and %d held-out frames", len(videos), len(train), len(held_out))
    refiner, history = train_refiner(
        train, out_dir, config, held_out=held_out, device=device, progress=progress, world=world
    )
    if world.is_main:
        refiner.cpu().save(
            out_dir / GENERAL_NAME,
            {"corpus": json.dumps([video.name for video in videos]), "history": json.dumps(history)},
        )
    return refiner, history
