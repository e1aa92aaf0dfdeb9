"""The memory network of the memory-augmented GAN (Yi et al. 2020, after Yoo et al.'s MemoPainter).

Slots pair a *key* (an L2-normalised embedding of a rendered face) with a *value* (an
L2-normalised identity feature of the real frame it was rendered from) and an *age*. Reading
finds the slot whose key is nearest to a query and returns its value: the identity that the
generator's AdaIN layers are driven by. Training shapes the query encoder with a threshold
triplet loss over the top-k nearest slots, and writes each training pair into the memory: into
its nearest slot when that slot already holds the same identity (value cosine above
`value_threshold`; the key moves toward the query), else over the oldest slot.

Keys and values are buffers, not parameters: only the query encoder learns by gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recon3d.distributed import World


@dataclass(frozen=True)
class MemoryConfig:
    """Sizes and thresholds of the memory (Yi et al.: 30,000 slots, 512-d keys and values, top-k
    256, margin 0.3, same identity above 0.98 cosine)."""

    slots: int = 2048
    """Memory slots (keys, identity values, ages)."""
    key_dim: int = 256
    value_dim: int = 128
    """Width of the identity feature stored as the value (128 for dlib's face-recognition network)."""
    top_k: int = 64
    margin: float = 0.3
    value_threshold: float = 0.98
    """Cosine above which two identity features count as the same identity."""


class Memory(nn.Module):
    """`slots` (key, value, age) triples with nearest-key reading and the update-or-replace rule."""

    def __init__(self, config: MemoryConfig = MemoryConfig(), generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        keys = F.normalize(torch.randn(config.slots, config.key_dim, generator=generator), dim=1)
        self.register_buffer("keys", keys)
        self.register_buffer("values", torch.zeros(config.slots, config.value_dim))
        # Empty slots are the oldest, so they are filled first, in order.
        self.register_buffer("ages", torch.arange(config.slots, 0, -1, dtype=torch.long) + 10**9)

    @property
    def filled(self) -> torch.Tensor:
        """`(slots,)` bool: the slots that hold a value."""
        return self.values.abs().sum(1) > 0

    def nearest(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, k)` cosine similarities and slot indices of the `k` keys nearest each `(B, key_dim)`
        unit query, filled slots first (empty ones rank below any filled one)."""
        similarity = (queries @ self.keys.T).masked_fill(~self.filled, -3.0)
        return torch.topk(similarity, k=min(k, self.config.slots), dim=1)

    def read(self, queries: torch.Tensor) -> torch.Tensor:
        """`(B, value_dim)`: the value of each query's nearest slot."""
        _, index = self.nearest(queries.detach())
        return self.values[index[:, 0]]

    def triplet_loss(self, queries: torch.Tensor, values: torch.Tensor, world: World = World()) -> torch.Tensor:
        """Threshold triplet loss: among each query's `top_k` nearest slots, the nearest one holding
        the query's identity (value cosine > `value_threshold`) should be nearer than the nearest
        one holding another, by `margin`. Queries without both kinds of neighbour add nothing.
        Over several processes (`world`), the mean over every process's queries."""
        return world.masked_mean(*self.triplet_hinges(queries, values))

    def triplet_hinges(self, queries: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B,)` hinge of each query's triplet (`triplet_loss`) and `(B,)` bool: whether the query
        has both kinds of neighbour (the hinge of one that has not is meaningless)."""
        _, index = self.nearest(queries.detach(), self.config.top_k)
        same = (self.values[index] @ values.unsqueeze(2)).squeeze(2) > self.config.value_threshold
        other = ~same & self.filled[index]
        first_positive = torch.where(same.any(1), same.float().argmax(1), -1)
        first_negative = torch.where(other.any(1), other.float().argmax(1), -1)
        usable = (first_positive >= 0) & (first_negative >= 0)
        rows = torch.arange(len(queries), device=queries.device)
        positive = self.keys[index[rows, first_positive]]
        negative = self.keys[index[rows, first_negative]]
        gap = (queries * negative).sum(1) - (queries * positive).sum(1) + self.config.margin
        return gap.clamp(min=0), usable

    @torch.no_grad()
    def write(self, queries: torch.Tensor, values: torch.Tensor) -> None:
        """Stores each (query, value) pair: the nearest slot takes it when it holds the same
        identity (its key moves to the normalised sum, its age restarts), else the oldest slot is
        replaced. Every slot ages by one per pair."""
        for query, value in zip(F.normalize(queries.detach(), dim=1), F.normalize(values.detach(), dim=1)):
            self.ages += 1
            _, index = self.nearest(query[None])
            slot = int(index[0, 0])
            if float(self.values[slot] @ value) > self.config.value_threshold:
                self.keys[slot] = F.normalize(self.keys[slot] + query, dim=0)
            else:
                slot = int(torch.argmax(self.ages))
                self.keys[slot], self.values[slot] = query, value
            self.ages[slot] = 0
