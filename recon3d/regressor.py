"""Coefficient regressor: a ResNet-style CNN from a face crop to the face model's coefficients.

As Deng et al. (2019) it is trained weakly supervised, with the fitting's own losses (68-landmark
reprojection, skin photometric error against a render of the model's mean albedo under the
predicted lighting, coefficient priors); no labels and no pretrained weights (none can be
downloaded here), so it trains from scratch on a corpus of clips with `talkface pretrain recon`.
It gives the fitting a per-frame start and reconstructs single frames fast.

Checkpoints are plain tensors + a JSON-able config (`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from recon3d.checkpoint import malformed_checkpoint, read_checkpoint, write_checkpoint
from recon3d.errors import InputError
from recon3d.facemodel import CoeffLayout, Coeffs, FaceModel

CHECKPOINT_FORMAT_VERSION = 1


@dataclass
class RegressorConfig:
    """Architecture of the regressor."""

    image_size: int = 128
    """Side of the (square) input crop, pixels."""
    width: int = 32
    """Channels of the first stage; each later stage doubles them."""
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    """Residual blocks per stage (ResNet-18 layout by default); each stage halves the resolution."""


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm, identity or 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CoeffRegressor(nn.Module):
    """(B, 3, S, S) crops in [0, 1] -> coefficients in the model's layout.

    The head starts at zero, so an untrained regressor predicts the mean face at `trans_offset`
    (the corpus's typical face position in the stable crop), frontal, under white light.
    """

    def __init__(self, layout: CoeffLayout, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.layout = layout
        self.config = config or RegressorConfig()
        width = self.config.width
        layers: list[nn.Module] = [
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        channels = width
        for stage, count in enumerate(self.config.blocks):
            out = width * 2**stage
            for block in range(count):
                layers.append(BasicBlock(channels, out, 2 if stage > 0 and block == 0 else 1))
                channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, layout.total)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("trans_offset", torch.zeros(3))
        self.register_buffer("pixel_mean", torch.tensor([0.5, 0.4, 0.35]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> Coeffs:
        if images.shape[-2:] != (self.config.image_size,) * 2:
            images = F.interpolate(
                images, size=(self.config.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        coeffs = self.layout.split(self.head(self.features(images - self.pixel_mean)))
        return Coeffs(
            id=coeffs.id,
            exp=coeffs.exp,
            tex=coeffs.tex,
            angle=coeffs.angle,
            gamma=coeffs.gamma,
            trans=coeffs.trans + self.trans_offset,
        )

    def save(self, path: str | os.PathLike, face_model: FaceModel, extra: dict | None = None) -> None:
        """Weights + config + the face model's identity, atomically."""
        write_checkpoint(
            path,
            {
                "format_version": CHECKPOINT_FORMAT_VERSION,
                "config": asdict(self.config),
                "layout": asdict(self.layout),
                "face_model": face_model.name,
                "num_vertices": face_model.num_vertices,
                "state_dict": self.state_dict(),
                **(extra or {}),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, face_model: FaceModel) -> CoeffRegressor:
        """Loads a checkpoint made for `face_model` (weights only: no code runs from the file)."""
        hint = "rerun `talkface pretrain recon`"
        checkpoint = read_checkpoint(path, "regressor", CHECKPOINT_FORMAT_VERSION, hint)
        if checkpoint.get("face_model") != face_model.name or checkpoint.get("num_vertices") != face_model.num_vertices:
            raise InputError(
                f"{path}: regressor trained for face model {checkpoint.get('face_model')!r}, not {face_model.name!r}; "
                "pass the same --face-model or retrain it"
            )
        with malformed_checkpoint(path, "regressor", hint):
            return cls._from_checkpoint(checkpoint)

    @classmethod
    def _from_checkpoint(cls, checkpoint: dict) -> CoeffRegressor:
        config = checkpoint["config"]
        regressor = cls(
            CoeffLayout(**checkpoint["layout"]),
            RegressorConfig(config["image_size"], config["width"], tuple(config["blocks"])),
        )
        regressor.load_state_dict(checkpoint["state_dict"])
        return regressor
