"""Shapes and wiring of the refinement networks."""

from __future__ import annotations

import pytest
import torch

from refine.networks import Generator, NetworkConfig, PatchDiscriminator, QueryEncoder


@pytest.mark.parametrize("size", [64, 128])
def test_generator_refines_the_middle_render_through_its_mask(size):
    torch.manual_seed(0)
    config = NetworkConfig(size=size, base_channels=8, max_channels=32)
    generator = Generator(config)
    window = torch.rand(2, 9, size, size) * 2 - 1
    identity = torch.randn(2, config.identity_dim)
    refined, generated, mask = generator(window, identity)
    assert refined.shape == generated.shape == (2, 3, size, size) and mask.shape == (2, 1, size, size)
    assert 0 <= mask.min() and mask.max() <= 1 and generated.abs().max() <= 1
    render = window[:, 3:6]
    torch.testing.assert_close(refined, mask * render + (1 - mask) * generated)
    # The identity feature steers the output (AdaIN), the window is not all it sees.
    other, _, _ = generator(window, torch.randn(2, config.identity_dim))
    assert (other - refined).abs().mean() > 1e-3


def test_sizes_that_are_not_powers_of_two_are_refused():
    with pytest.raises(ValueError, match="power of two"):
        Generator(NetworkConfig(size=96))


def test_the_discriminator_scores_patches_and_the_query_encoder_gives_unit_keys():
    config = NetworkConfig(size=128, base_channels=8, max_channels=32, key_dim=16)
    window, frame = torch.rand(2, 9, 128, 128), torch.rand(2, 3, 128, 128)
    logits = PatchDiscriminator(config)(window, frame)
    assert logits.shape == (2, 1, 14, 14)  # pix2pix's 70x70 PatchGAN on 128 pixels
    keys = QueryEncoder(config)(window)
    assert keys.shape == (2, 16)
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(2))
