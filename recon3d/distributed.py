"""Data-parallel corpus training over processes started by torchrun (DistributedDataParallel).

Under `torchrun --nproc_per_node N`, every process (rank) joins one process group (gloo on a
CPU; NCCL on CUDA, one GPU per process: cuda:LOCAL_RANK) and trains a replica of the networks,
wrapped in DDP, which averages their gradients at every backward. So that N processes follow the
loss curve of one process on the same global batch (`--batch-size`):
- every rank draws the whole step's batch from the same seeded generator and keeps its share
  (`World.share`: contiguous rows, in rank order);
- loss terms are reduced to their value over the global batch with a differentiable all-reduce
  (`World.batch_mean`, `World.masked_mean`), so every rank back-propagates the same loss; the
  all-reduce's backward hands each rank N times its part of the gradient and DDP's average
  divides by N again;
- batch norm normalises with the global batch's statistics (`sync_batch_norm`; torch's own
  `nn.SyncBatchNorm` runs on GPUs only);
- what a step writes outside the parameters (the refiner's memory) is gathered (`World.gather`)
  and written identically on every rank.
Only rank 0 writes files, shows progress bars and logs at INFO. Dropout masks are each rank's own
(seeded by `World.seed`), so a network with dropout agrees with one process in distribution, not
value for value.

Without torchrun (or with one process) the world is a single process: every helper returns its
input unchanged and the training code runs exactly as it does without this module.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recon3d.errors import InputError

log = logging.getLogger("talkface")

TIMEOUT = datetime.timedelta(hours=2)
"""How long a rank waits at a collective: meanwhile another may reconstruct its share of a corpus."""


@dataclass(frozen=True)
class World:
    """The processes that train one model together; the default is a single process."""

    rank: int = 0
    size: int = 1
    group: dist.ProcessGroup | None = None
    """Group of the collectives inside losses and batch norm: apart from DDP's gradient
    all-reduces, so that the two never queue in different orders on different ranks."""

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files, logs and shows progress."""
        return self.rank == 0

    def share(self, batch_size: int) -> slice:
        """This rank's rows of a global batch: contiguous, in rank order, sizes differing by at most one."""
        base, extra = divmod(batch_size, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def own(self, count: int) -> range:
        """The items (of `count`) this rank prepares when work is split over the ranks."""
        return range(self.rank, count, self.size)

    def check_batch(self, batch_size: int, flag: str = "--batch-size") -> None:
        if batch_size < self.size:
            raise InputError(
                f"{flag} {batch_size} is smaller than the {self.size} processes it is split over; "
                "give a larger batch or fewer processes"
            )

    def seed(self, seed: int) -> int:
        """The seed of this rank's own random draws (dropout): `seed` itself on rank 0, an
        independent one derived from (`seed`, rank) on the others."""
        return seed if self.rank == 0 else int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.group)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over the ranks, differentiable (its backward sums the ranks' gradients)."""
        return _AllSum.apply(tensor, self.group) if self.distributed else tensor

    def batch_mean(self, terms: dict[str, torch.Tensor], rows: int) -> dict[str, torch.Tensor]:
        """Scalar loss terms, each a mean over this rank's `rows` samples -> the same terms over
        the global batch, equal on every rank (one all-reduce)."""
        if not self.distributed:
            return terms
        local = torch.stack(list(terms.values())) * rows
        totals = self.sum(torch.cat([local, local.new_tensor([rows])]))
        return dict(zip(terms, totals[:-1] / totals[-1]))

    def masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of `values[mask]` over every rank's rows; 0 (still part of the graph) when no rank
        selects any."""
        if not self.distributed:
            return values[mask].mean() if mask.any() else values.sum() * 0.0
        totals = self.sum(torch.stack([torch.where(mask, values, 0).sum(), mask.sum().to(values.dtype)]))
        return totals[0] / totals[1] if totals[1] > 0 else totals[0] * 0.0

    @torch.no_grad()
    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's rows of `tensor`, concatenated in rank order (the global batch); not differentiable."""
        if not self.distributed:
            return tensor
        count = torch.tensor([len(tensor)], device=tensor.device)
        counts = [torch.zeros_like(count) for _ in range(self.size)]
        dist.all_gather(counts, count, group=self.group)
        padded = tensor.new_zeros((int(max(counts)), *tensor.shape[1:]))  # all_gather needs equal sizes
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded.contiguous(), group=self.group)
        return torch.cat([part[: int(n)] for part, n in zip(parts, counts)])

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` in DDP (its gradients averaged over the ranks at each backward); itself for one process."""
        if not self.distributed:
            return module
        device = next(module.parameters()).device
        return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


class _AllSum(torch.autograd.Function):
    """All-reduce (sum) with the all-reduce of the gradients as its backward (as the deprecated
    `torch.distributed.nn.functional.all_reduce`)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: dist.ProcessGroup) -> torch.Tensor:
        ctx.group = group
        tensor = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _AllSum.apply(grad, ctx.group), None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch (summed over the
    ranks, differentiably), as `nn.SyncBatchNorm`, which runs on GPUs only. It has the
    parameters and buffers of the batch norm it replaces, so checkpoints do not change."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, world: World) -> None:
        super().__init__(norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
        self.world = world
        self.weight, self.bias = norm.weight, norm.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(self, name, getattr(norm, name))
        self.train(norm.training)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected (B, C, ...) input, got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.world.distributed):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        totals = self.world.sum(torch.cat([x.sum(dims), x.new_tensor([x.numel() / x.shape[1]])]))
        count = totals[-1]
        mean = totals[:-1] / count
        centred = x - mean.view(shape)
        var = self.world.sum(centred.square().sum(dims)) / count  # biased, as batch norm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * count / (count - 1).clamp(min=1), factor)  # unbiased, as batch norm keeps
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def sync_batch_norm(module: nn.Module, world: World) -> nn.Module:
    """`module` with each batch norm replaced (in place) by a `GlobalBatchNorm` sharing its
    parameters and buffers; unchanged for one process."""
    if world.distributed:
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
                setattr(module, name, GlobalBatchNorm(child, world))
            else:
                sync_batch_norm(child, world)
    return module


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) as torchrun sets them, or None in a process it did not start."""
    if "WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


@contextlib.contextmanager
def torchrun_world(device: torch.device) -> Iterator[tuple[World, torch.device]]:
    """The world of this process and the device it trains on.

    Started by torchrun with several processes: joins the process group (NCCL on cuda:LOCAL_RANK
    for a CUDA device, else gloo), keeps talkface's INFO logs to rank 0, and on leaving waits for
    every rank before tearing the group down. Otherwise a world of one, on `device`."""
    env = torchrun_env()
    if env is None or env[1] == 1:
        yield World(), device
        return
    rank, size, local_rank = env
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"process {rank} has local rank {local_rank} but only {torch.cuda.device_count()} GPUs "
                "are visible; start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    world = World(rank, size, dist.new_group(backend=backend, timeout=TIMEOUT))
    level = log.level
    if rank:
        log.setLevel(logging.WARNING)
    log.info("data-parallel over %d processes (%s), one share of each batch per process", size, backend)
    finished = False
    try:
        yield world, device
        finished = True
    finally:
        log.setLevel(level)
        if finished:  # a failed rank ends the run: torchrun stops the others
            dist.barrier()
        dist.destroy_process_group()
