"""Memory network semantics: reading the nearest slot, update-or-replace-oldest, the triplet loss."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from refine.memory import Memory, MemoryConfig

CONFIG = MemoryConfig(slots=8, key_dim=4, value_dim=3, top_k=8, margin=0.3, value_threshold=0.98)


def unit(*values: float) -> torch.Tensor:
    return F.normalize(torch.tensor([values], dtype=torch.float32), dim=1)


def test_empty_slots_fill_in_order_then_the_oldest_is_replaced():
    config = dataclasses.replace(CONFIG, value_dim=9)
    memory = Memory(config, torch.Generator().manual_seed(0))
    for slot in range(config.slots):  # a new identity each time
        memory.write(unit(*torch.randn(4).tolist()), torch.eye(9)[[slot]])
    assert torch.equal(memory.ages, torch.arange(config.slots - 1, -1, -1))
    memory.write(unit(1, 2, 3, 4), torch.eye(9)[[8]])
    assert torch.allclose(memory.keys[0], unit(1, 2, 3, 4)[0]) and memory.ages[0] == 0
    assert torch.equal(memory.values[0], torch.eye(9)[8])


def test_the_same_identity_moves_its_slot_toward_the_query():
    memory = Memory(CONFIG, torch.Generator().manual_seed(0))
    memory.write(unit(1, 0, 0, 0), unit(0, 1, 0))
    slot = int(torch.argmin(memory.ages))
    values_before = memory.values.clone()
    memory.write(unit(1, 1, 0, 0), unit(0, 1, 0.01))
    assert int(torch.argmin(memory.ages)) == slot and memory.ages[slot] == 0
    expected = F.normalize(unit(1, 0, 0, 0)[0] + unit(1, 1, 0, 0)[0], dim=0)
    assert torch.allclose(memory.keys[slot], expected, atol=1e-6)
    assert torch.equal(memory.values, values_before)
    # Another identity at the same key goes to the oldest slot, not over this one.
    memory.write(unit(1, 1, 0, 0), unit(1, 0, 0))
    assert torch.allclose(memory.values[slot], unit(0, 1, 0)[0]) and (memory.ages == 0).sum() == 1


def test_reading_returns_the_value_of_the_nearest_key():
    memory = Memory(CONFIG, torch.Generator().manual_seed(0))
    memory.write(unit(1, 0, 0, 0), unit(1, 0, 0))
    memory.write(unit(0, 1, 0, 0), unit(0, 1, 0))
    read = memory.read(torch.cat([unit(0.9, 0.1, 0, 0), unit(0.1, 0.9, 0, 0)]))
    assert torch.allclose(read, torch.eye(3)[:2])


def test_the_triplet_loss_pulls_queries_to_their_identitys_slot():
    memory = Memory(CONFIG, torch.Generator().manual_seed(0))
    memory.write(unit(1, 0, 0, 0), unit(1, 0, 0))
    memory.write(unit(0, 1, 0, 0), unit(0, 1, 0))
    values = unit(1, 0, 0)
    near_own = unit(1, 0.1, 0, 0).requires_grad_()
    assert memory.triplet_loss(near_own, values).item() == 0  # nearer its own slot by more than the margin
    near_other = unit(0.2, 1, 0, 0).requires_grad_()
    loss = memory.triplet_loss(near_other, values)
    assert loss.item() > 0.3
    loss.backward()
    step = near_other.detach() - 0.1 * near_other.grad
    assert memory.triplet_loss(F.normalize(step, dim=1), values) < loss
