"""An actor's refiner as `generate` uses it: the fine-tuned networks plus the face region of the
actor's crop they work in, and how their output goes back into the crop.

The refined region replaces the rendered crop only over the face (the render's coverage with its
holes filled, widened and feathered): elsewhere the crop already is the real frame at the crop's
full resolution, and a 128-pixel network's resampling would only blur it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from recon3d.crop import CropTransform
from recon3d.errors import InputError
from refine.memory import MemoryConfig
from refine.model import Refiner
from refine.networks import NetworkConfig
from refine.train import RefineTrainConfig

ACTOR_REFINE = RefineTrainConfig(
    network=NetworkConfig(size=128, base_channels=16), memory=MemoryConfig(slots=256), steps=1000
)
"""The CPU preset of per-actor fine-tuning (docs/benchmarks.md: refinement benchmark): a 16-channel U-Net at
128 pixels, a memory of 256 slots (one actor's frames; Yi et al.'s 30,000 serve a corpus)."""
GPU_REFINE_SIZE = 256
"""Default size on a GPU, as Yi et al.'s."""
CORPUS_REFINE = dataclasses.replace(ACTOR_REFINE, steps=RefineTrainConfig.steps, memory=MemoryConfig())
"""`talkface pretrain refine`'s: the CPU preset's networks, trained longer, with a memory for a
corpus of identities."""
TINY_REFINE = RefineTrainConfig(
    network=NetworkConfig(size=32, base_channels=8, max_channels=16),
    memory=MemoryConfig(slots=32),
    steps=4,
    checkpoint_every=2,
    sample_every=4,
    log_every=2,
)
"""The tiny preset's (smoke tests): a few steps of an 8-channel U-Net at 32 pixels."""
FACE_GROW = 0.04
FACE_FEATHER = 0.03
"""Widening and feather of the face's coverage where the refinement is pasted, fractions of the
crop side."""


def general_refiner(path: str | os.PathLike, config: RefineTrainConfig) -> Refiner:
    """The general refiner at `path`, with an empty memory of `config`'s, to fine-tune on an actor
    with `config` (whose network it must have)."""
    hint = "give a refiner from `talkface pretrain refine`"
    refiner = Refiner.load(path, hint)
    if refiner.network_config != config.network:
        raise InputError(
            f"{path}: a refiner of other network settings ({refiner.network_config}) than this actor's "
            f"({config.network}); {hint} with the same size and channels"
        )
    return refiner.with_memory(config.memory)


def face_alpha(coverage: np.ndarray) -> np.ndarray:
    """(C, C) float32 in [0, 1]: the rendered face (`coverage` > 0.5) with its holes (eyes, an
    unfilled mouth) filled, grown by `FACE_GROW` and feathered by `FACE_FEATHER` of the side."""
    side = coverage.shape[0]
    mask = np.zeros(coverage.shape, np.uint8)
    contours, _ = cv2.findContours((coverage > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(mask, contours, -1, 1, thickness=cv2.FILLED)
    grow = max(1, round(FACE_GROW * side))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    sigma = max(FACE_FEATHER * side / 2, 0.5)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


@dataclass
class ActorRefiner:
    refiner: Refiner
    region: CropTransform
    """The face region of the actor's crop, resampled to the refiner's size."""

    @property
    def window(self) -> int:
        return self.refiner.window

    @classmethod
    def load(cls, path: str | os.PathLike, hint: str = "retrain it") -> ActorRefiner:
        refiner, checkpoint = Refiner.load_checkpoint(path, hint)
        return cls(refiner, CropTransform(**checkpoint["region"]))

    def save(self, path: str | os.PathLike) -> None:
        self.refiner.save(path, {"region": self.region.to_dict()})

    def to(self, device: torch.device | str) -> ActorRefiner:
        self.refiner.to(device)
        return self

    def refine(self, crops: np.ndarray, coverage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(T + window - 1, C, C, 3)` consecutive rendered crops (the middle T with a neighbour's
        worth either side) and the middle ones' `(T, C, C)` render coverage -> the `(T, C, C, 3)`
        middle crops with their face refined, and `(T, C, C)` where they differ from the input
        (`face_alpha`)."""
        half = self.window // 2
        refined = self.refiner.refine(np.stack([self.region.crop(crop) for crop in crops]))
        alphas = np.stack([face_alpha(covered) for covered in coverage])
        return np.stack(
            [
                self.region.paste(image, crops[k + half], self.region.crop(alpha))
                for k, (image, alpha) in enumerate(zip(refined, alphas))
            ]
        ), alphas

    def refine_sequence(self, crops: np.ndarray, coverage: np.ndarray, batch: int = 16) -> np.ndarray:
        """`(T, C, C, 3)` consecutive rendered crops and their `(T, C, C)` coverage -> the refined
        crops, `batch` at a time, the clip's first and last frame repeated as their own neighbours."""
        half = self.window // 2
        padded = np.clip(np.arange(-half, len(crops) + half), 0, len(crops) - 1)
        return np.concatenate(
            [
                self.refine(crops[padded[k : k + batch + 2 * half]], coverage[k : k + batch])[0]
                for k in range(0, len(crops), batch)
            ]
        )
