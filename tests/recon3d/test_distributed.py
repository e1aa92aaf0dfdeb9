"""The data-parallel helpers (`recon3d.distributed`): a world of one changes nothing, and two real
gloo processes computing a batch-norm network's loss and gradients on their shares of a batch
get those of one process on the whole batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from recon3d.distributed import GlobalBatchNorm, World, sync_batch_norm, torchrun_world
from recon3d.errors import InputError

BATCH = 5  # split 3 + 2: uneven shares


def test_shares_cover_the_batch_in_rank_order():
    shares = [World(rank, 3).share(10) for rank in range(3)]
    assert [(s.start, s.stop) for s in shares] == [(0, 4), (4, 7), (7, 10)]
    assert World().share(10) == slice(0, 10)
    assert list(World(1, 3).own(7)) == [1, 4]
    with pytest.raises(InputError, match="--batch-size 2 is smaller than the 3 processes"):
        World(0, 3).check_batch(2)


def test_a_world_of_one_leaves_everything_as_it_is(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with torchrun_world(torch.device("cpu")) as (world, device):
        assert world == World() and device == torch.device("cpu")
    terms = {"a": torch.tensor(1.0)}
    assert world.batch_mean(terms, 3) is terms
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert world.wrap(net) is net and isinstance(sync_batch_norm(net, world)[1], nn.BatchNorm2d)
    values, mask = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([True, False, True])
    assert world.masked_mean(values, mask) == 2.5 and world.masked_mean(values, mask & False) == 0
    assert world.seed(7) == 7 and World(1, 2).seed(7) != 7


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 2, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def step(world: World) -> dict[str, torch.Tensor]:
    """One training step's loss terms, gradients, batch-norm statistics and gathered rows."""
    torch.manual_seed(1)
    images, targets = torch.randn(BATCH, 3, 12, 12), torch.randn(BATCH, 2)
    net = network()
    sync_batch_norm(net, world)
    rows = world.share(BATCH)
    replica = world.wrap(net)  # kept: DDP averages gradients only while its wrapper lives
    outputs = replica(images[rows])
    terms = world.batch_mean({"mse": (outputs - targets[rows]).square().mean()}, len(outputs))
    selected = world.masked_mean(outputs[:, 0], outputs[:, 1] > 0)  # as the refiner's triplet loss
    (terms["mse"] + selected).backward()
    return {
        "mse": terms["mse"].detach(),
        "selected": selected.detach(),
        "gathered": world.gather(outputs.detach()),
        **{f"grad {name}": p.grad for name, p in net.named_parameters()},
        **{name: b for name, b in net.state_dict().items() if "running" in name},
    }


def _worker(rank: int, port: int, results: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2"
    )
    torch.set_num_threads(1)
    with torchrun_world(torch.device("cpu")) as (world, _):
        assert isinstance(sync_batch_norm(network(), world)[1], GlobalBatchNorm)
        result = step(world)
        if world.is_main:
            torch.save(result, results)


@pytest.mark.slow
def test_two_processes_compute_what_one_computes_on_the_whole_batch(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path / "rank0.pt")), nprocs=2)
    two = torch.load(tmp_path / "rank0.pt", weights_only=True)
    one = step(World())
    assert one.keys() == two.keys()
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
