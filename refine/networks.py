"""The generator, discriminator and query encoder of the memory-augmented GAN (Yi et al. 2020).

- `Generator`: a U-Net over a window of consecutive rendered face crops (default 3, stacked as
  channels), whose decoder is modulated by AdaIN from the identity feature read from the memory
  (through a 3-layer MLP). It outputs an RGB image and an attention mask; the refined frame is
  mask * render + (1 - mask) * generated, with the render the window's middle frame, so the
  network only has to paint where the render falls short.
- `PatchDiscriminator`: a conditional PatchGAN (70x70 receptive field) on the rendered window
  with a real or refined frame.
- `QueryEncoder`: the memory's key embedding of a rendered window. Yi et al. use a frozen
  ImageNet ResNet-18; no such weights can be had offline here, so a small CNN is trained with the
  memory's triplet loss instead.

Images are `(B, 3 * window, S, S)` windows and `(B, 3, S, S)` frames in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the refinement networks (Yi et al.: 256 pixels, 8 levels, 64 base channels)."""

    size: int = 128
    """Side of the face crops, a power of two (128 for CPU presets, 256 on a GPU, 512 possible)."""
    window: int = 3
    """Consecutive rendered frames the generator sees (the refined one in the middle)."""
    base_channels: int = 32
    max_channels: int = 256
    bottleneck: int = 4
    """Side at the U-Net's bottom."""
    identity_dim: int = 128
    key_dim: int = 256

    def __post_init__(self) -> None:
        self.levels  # noqa: B018 (validates the size)

    @property
    def levels(self) -> int:
        levels = math.log2(self.size / self.bottleneck)
        if self.size < 16 or levels != int(levels):
            raise ValueError(f"refinement size must be a power of two of at least 16, got {self.size}")
        return int(levels)

    def channels(self, level: int) -> int:
        return min(self.base_channels * 2**level, self.max_channels)


class AdaIN(nn.Module):
    """Instance normalisation with a per-sample scale and shift given from outside."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.adain = AdaIN(out_channels)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        # Upsampling + convolution instead of transposed convolution: no checkerboard artefacts.
        x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return F.relu(self.adain(x, scale, shift))


class Generator(nn.Module):
    """U-Net with AdaIN: rendered window + identity feature -> refined frame, RGB and mask."""

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        self.config = config
        levels = config.levels
        down_channels = [config.channels(level) for level in range(levels)]
        self.down = nn.ModuleList()
        in_channels = 3 * config.window
        for level, out_channels in enumerate(down_channels):
            layers = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)]
            if level > 0:
                layers.append(nn.InstanceNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            in_channels = out_channels
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            out_channels = config.channels(level - 1) if level > 0 else config.base_channels
            skip = down_channels[level - 1] if level > 0 else 0
            self.up.append(_Up(in_channels, out_channels))
            in_channels = out_channels + skip
        self.head = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.adain_widths = [block.adain.norm.num_features for block in self.up]
        self.style = nn.Sequential(
            nn.Linear(config.identity_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, 2 * sum(self.adain_widths)),
        )

    def forward(self, window: torch.Tensor, identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(refined frame, generated RGB, mask in [0, 1]) for a `(B, 3 * window, S, S)` rendered
        window and `(B, identity_dim)` identity features."""
        skips, x = [], window
        for block in self.down:
            x = block(x)
            skips.append(x)
        styles = torch.split(self.style(identity), [w for width in self.adain_widths for w in (width, width)], dim=1)
        skips.pop()  # the bottom is x itself
        for k, block in enumerate(self.up):
            x = block(x, styles[2 * k], styles[2 * k + 1])
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        out = self.head(x)
        generated, mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:])
        middle = self.config.window // 2
        render = window[:, 3 * middle : 3 * middle + 3]
        return mask * render + (1 - mask) * generated, generated, mask


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN (pix2pix's 70x70): real/fake logits per patch of a frame given its
    rendered window."""

    def __init__(self, config: NetworkConfig = NetworkConfig(), layers: int = 3) -> None:
        super().__init__()
        channels = config.base_channels * 2
        blocks = [nn.Conv2d(3 * config.window + 3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for k in range(1, layers + 1):
            out_channels = min(channels * 2, config.max_channels * 2)
            stride = 2 if k < layers else 1
            blocks += [
                nn.Conv2d(channels, out_channels, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(out_channels),
                nn.LeakyReLU(0.2),
            ]
            channels = out_channels
        blocks.append(nn.Conv2d(channels, 1, 4, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, window: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([window, frame], dim=1))


class QueryEncoder(nn.Module):
    """Rendered window -> unit key for the memory (a strided CNN, global pooling, a linear map)."""

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        layers, in_channels = [], 3 * config.window
        for level in range(4):
            out_channels = config.channels(level)
            layers += [
                nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.project = nn.Linear(in_channels, config.key_dim)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.features(window)), dim=1)
