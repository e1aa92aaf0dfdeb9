"""The refiner: query encoder + memory + generator, as one module that is saved and loaded whole.

At inference the memory is read with the rendered window's key and the retrieved identity drives
the generator; in training the generator is driven by the real frame's own identity feature
(MemoPainter's scheme), while the encoder and memory learn to retrieve it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from recon3d.checkpoint import malformed_checkpoint, read_checkpoint, write_checkpoint
from refine.memory import Memory, MemoryConfig
from refine.networks import Generator, NetworkConfig, QueryEncoder

FORMAT_VERSION = 1


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).movedim(-1, -3).float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, S, S) in [-1, 1] -> (..., S, S, 3) uint8."""
    return ((images.detach().clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).cpu().numpy()


def stack_window(frames: torch.Tensor) -> torch.Tensor:
    """(B, window, 3, S, S) -> (B, 3 * window, S, S), as the networks take windows."""
    return frames.flatten(1, 2)


class Refiner(nn.Module):
    def __init__(self, network: NetworkConfig = NetworkConfig(), memory: MemoryConfig = MemoryConfig()) -> None:
        super().__init__()
        if memory.key_dim != network.key_dim or memory.value_dim != network.identity_dim:
            raise ValueError(
                f"memory keys/values ({memory.key_dim}/{memory.value_dim}) must match the networks' "
                f"({network.key_dim}/{network.identity_dim})"
            )
        self.network_config, self.memory_config = network, memory
        self.generator = Generator(network)
        self.encoder = QueryEncoder(network)
        self.memory = Memory(memory)

    @property
    def size(self) -> int:
        return self.network_config.size

    @property
    def window(self) -> int:
        return self.network_config.window

    def forward(
        self, window: torch.Tensor, identity: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`Generator.forward` on a `(B, 3 * window, S, S)` rendered window, driven by `identity`
        or, without it, by the identity read from the memory."""
        if identity is None:
            identity = self.memory.read(self.encoder(window))
        return self.generator(window, identity)

    @torch.no_grad()
    def refine(self, renders: np.ndarray, batch_frames: int = 16) -> np.ndarray:
        """(T, S, S, 3) uint8 consecutive rendered frames -> the refined (T - window + 1) middle
        ones (the caller gives the neighbours of its first and last frame)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        half = self.window // 2
        out = []
        for first in range(half, len(renders) - half, batch_frames):
            middle = np.arange(first, min(first + batch_frames, len(renders) - half))
            index = middle[:, None] + np.arange(-half, half + 1)
            out.append(to_uint8(self(stack_window(to_tensor(renders[index], device)))[0]))
        self.train(was_training)
        return np.concatenate(out) if out else renders[:0]

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        write_checkpoint(
            path,
            {
                "format_version": FORMAT_VERSION,
                "network": asdict(self.network_config),
                "memory": asdict(self.memory_config),
                "state": self.state_dict(),
                **(extra or {}),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, hint: str = "retrain it") -> Refiner:
        return cls.load_checkpoint(path, hint)[0]

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike, hint: str = "retrain it") -> tuple[Refiner, dict]:
        checkpoint = read_checkpoint(path, "refiner", FORMAT_VERSION, hint)
        with malformed_checkpoint(path, "refiner", hint):
            refiner = cls(NetworkConfig(**checkpoint["network"]), MemoryConfig(**checkpoint["memory"]))
            refiner.load_state_dict(checkpoint["state"])
        return refiner.eval(), checkpoint

    def with_memory(self, memory: MemoryConfig) -> Refiner:
        """A copy with an empty memory of another configuration (same widths), e.g. a small one
        for fine-tuning a corpus-trained refiner on one actor."""
        other = Refiner(
            self.network_config,
            dataclasses.replace(memory, key_dim=self.memory_config.key_dim, value_dim=self.memory_config.value_dim),
        )
        other.generator.load_state_dict(self.generator.state_dict())
        other.encoder.load_state_dict(self.encoder.state_dict())
        return other
