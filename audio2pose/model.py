"""The audio -> expression + head pose network (after Yi et al. 2020) and its loss.

A small CNN encodes each frame's 28x12 MFCC window, an LSTM runs over the frames, and a linear
head gives the face model's expression coefficients and the head pose (3 Euler angles in radians
+ 3 translations) per frame.

The network works in *normalised* units: every output is the actor's coefficient minus the actor's
mean, divided by the actor's standard deviation (`target_mean`, `target_std`, buffers saved with
the weights). Two reasons. ICT blendshape weights, radians and camera-space translations differ
by orders of magnitude, so one MSE over raw values would ignore some of them. And the statistics
carry the actor's style: the general model learns speech-driven dynamics with each corpus clip
normalised by its own statistics, and a personalised model turns them back into this actor's
mean pose and amplitude of head and mouth motion.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn

from audio2pose.features import FeatureConfig
from recon3d.checkpoint import malformed_checkpoint, read_checkpoint, write_checkpoint
from recon3d.errors import InputError

POSE_DIM = 6
"""3 Euler angles (radians, R = Rz Ry Rx) + 3 translations, as the face model's coefficients."""
STD_FLOOR = 1e-2
"""Smallest standard deviation used to normalise a target (coefficients an actor never moves)."""
POSE_AMPLITUDE = 0.5
"""Default spread of a predicted pose sequence, in units of the actor's own (see `restyle_pose`)."""
CHECKPOINT_FORMAT_VERSION = 1
PREDICT_CHUNK_FRAMES = 1000
"""Frames `AudioToPose.predict` encodes at a time (40 s of speech): its memory stays flat in length."""


@dataclass
class AudioToPoseConfig:
    """Architecture. Defaults are small because the data are: a wider network (64-128-128
    channels, 2 x 128 LSTM) only memorised the 20-clip corpus faster (Yi et al.: a 2D
    CNN of 5 layers up to 512 channels, `embedding=(2048, 256)`, `lstm_hidden=256`,
    `lstm_layers=3`)."""

    conv_channels: tuple[int, ...] = (32, 64)
    """Channels of the temporal convolutions (kernel 3, each followed by a 2x max pool)."""
    embedding: tuple[int, ...] = (64,)
    """Fully connected layers from the pooled CNN map to the LSTM input."""
    lstm_hidden: int = 64
    """Hidden units of each LSTM layer."""
    lstm_layers: int = 1
    """LSTM layers."""
    dropout: float = 0.5
    """Dropout on the embedding and between LSTM layers."""
    features: FeatureConfig = field(default_factory=FeatureConfig)


@dataclass(frozen=True)
class Motion:
    """Per-frame expression and head pose of a talking face (what audio2pose predicts)."""

    exp: torch.Tensor
    """(T, exp_dim) expression coefficients of the face model."""
    angle: torch.Tensor
    """(T, 3) Euler angles, radians (pitch, yaw, roll as the face model's `angle` coefficients)."""
    trans: torch.Tensor
    """(T, 3) translation, as the face model's `trans` coefficients."""

    @property
    def num_frames(self) -> int:
        return self.exp.shape[0]

    def angle_degrees(self) -> np.ndarray:
        return np.degrees(self.angle.detach().cpu().numpy())

    @classmethod
    def from_targets(cls, targets: torch.Tensor, exp_dim: int) -> Motion:
        """Splits `(T, exp_dim + 6)` rows of [exp | angle | trans]."""
        return cls(targets[:, :exp_dim], targets[:, exp_dim : exp_dim + 3], targets[:, exp_dim + 3 :])

    def targets(self) -> torch.Tensor:
        return torch.cat([self.exp, self.angle, self.trans], dim=-1)


def target_statistics(targets: torch.Tensor, exp_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coefficient mean and standard deviation of `(T, exp_dim + 6)` targets. Expression
    coefficients share one deviation (their root-mean-square one): they are in the same units,
    and one per coefficient would blow up those an actor barely moves into noise as loud as the
    jaw. Each pose coefficient has its own, floored at `STD_FLOOR`."""
    std = targets.std(0, unbiased=False)
    std[:exp_dim] = std[:exp_dim].square().mean().sqrt()
    return targets.mean(0), std.clamp_min(STD_FLOOR)


def window_spread(pose: np.ndarray, frames: int, step: int = 5) -> np.ndarray:
    """(C,) how far a stretch of `frames` frames of the actor's (N, C) pose spreads, in units of
    its whole footage's spread: the median, over its windows of that length (every `step`
    frames), of each coefficient's standard deviation in the window over its standard deviation in
    all N frames (1 where the stretch is as long as the footage). A few seconds of speech sweep
    less of the actor's range of head poses than all of its footage does (0.71-1.03, mean 0.90,
    over the 20 shared clips' held-out lengths; docs/eyes.md, head motion)."""
    pose = np.asarray(pose, np.float64)
    overall = pose.std(0)
    if frames >= len(pose):
        return np.ones(pose.shape[1])
    windows = np.stack([pose[start : start + frames].std(0) for start in range(0, len(pose) - frames + 1, step)])
    return np.where(overall > 0, np.median(windows, 0) / np.maximum(overall, 1e-12), 1.0)


SPEED_SIGMAS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"""Gaussian smoothing widths (frames) `match_speed` tries, gentlest first."""


def match_speed(pose: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(T, C) `pose` smoothed, each coefficient by the gentlest of `SPEED_SIGMAS` (or none) whose
    frame-to-frame changes spread no more than the (N, C) `reference`'s (the actor's footage),
    then moved and rescaled to its mean and spread before. Restyled to the actor's spread, the LSTM's
    head moves faster than the actor's (velocity W1 10.1 deg/s against the replayed footage's 6.1
    on the 20 clips' held-out speech; smoothed 6.6, HS 0.665 -> 0.660: docs/eyes.md)."""
    pose, reference = np.asarray(pose, np.float64), np.asarray(reference, np.float64)
    if len(pose) < 3 or len(reference) < 3:
        return pose
    out = pose.copy()
    limit = np.diff(reference, axis=0).std(0)
    for c in range(pose.shape[1]):
        column = pose[:, c]
        for sigma in (0.0, *SPEED_SIGMAS):
            smoothed = gaussian_filter1d(column, sigma, mode="nearest") if sigma else column
            if np.diff(smoothed).std() <= limit[c]:
                break
        spread = smoothed.std()
        out[:, c] = column.mean() + (smoothed - smoothed.mean()) * (column.std() / spread if spread > 0 else 0.0)
    return out


def restyle_pose(pose: torch.Tensor, amplitude: float | torch.Tensor) -> torch.Tensor:
    """Normalised `(T, 6)` pose re-centred on the actor's mean pose, each coefficient scaled to a
    standard deviation of `amplitude` (in the actor's units) over the utterance. The LSTM keeps
    the rhythm; the level and spread come from the actor. On new speech its pose drifts away from
    the actor's mean (yaw off by up to 16 degrees on the 20 shared clips); where the head will
    sit is unknowable from audio. `amplitude`: a number, or one per coefficient ((6,)): generate
    takes the spread of a stretch of the actor's footage as long as the speech (`window_spread`)."""
    centred = pose - pose.mean(0)
    spread = centred.square().mean(0).sqrt()
    return centred * (amplitude / spread.clamp_min(1e-6))


def _conv_encoder(config: AudioToPoseConfig) -> tuple[nn.Sequential, int]:
    """Convolutions along the window's 28 rows (time), its columns as channels; each layer ends
    with a 2x max pool."""
    layers: list[nn.Module] = []
    channels, rows = config.features.num_columns, config.features.window_rows
    for out in config.conv_channels:
        layers += [nn.Conv1d(channels, out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool1d(2, ceil_mode=True)]
        channels, rows = out, -(-rows // 2)
    return nn.Sequential(*layers, nn.Flatten()), channels * rows


class AudioToPose(nn.Module):
    """Feature windows `(B, T, 28, C)` -> normalised [exp | angle | trans] `(B, T, exp_dim + 6)`."""

    def __init__(self, exp_dim: int, config: AudioToPoseConfig | None = None) -> None:
        super().__init__()
        self.config = config or AudioToPoseConfig()
        self.exp_dim = exp_dim
        self.face_model: str | None = None
        """Name of the face model whose coefficients it predicts (set by `load`)."""
        self.encoder, flat = _conv_encoder(self.config)
        fc: list[nn.Module] = []
        for size in self.config.embedding:
            fc += [nn.Linear(flat, size), nn.ReLU(inplace=True), nn.Dropout(self.config.dropout)]
            flat = size
        self.embed = nn.Sequential(*fc)
        self.lstm = nn.LSTM(
            flat,
            self.config.lstm_hidden,
            self.config.lstm_layers,
            batch_first=True,
            dropout=self.config.dropout if self.config.lstm_layers > 1 else 0.0,
        )
        self.head = nn.Linear(self.config.lstm_hidden, self.output_dim)
        self.register_buffer("target_mean", torch.zeros(self.output_dim))
        self.register_buffer("target_std", torch.ones(self.output_dim))

    @property
    def output_dim(self) -> int:
        return self.exp_dim + POSE_DIM

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.encode(features))
        return self.head(hidden)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """`(B, T, 28, C)` windows -> `(B, T, E)` per-frame codes, the LSTM's input."""
        batch, frames = features.shape[:2]
        codes = self.encoder(features.reshape(batch * frames, *features.shape[2:]).transpose(1, 2))
        return self.embed(codes).reshape(batch, frames, -1)

    def set_style(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The actor whose mean and spread of expression and pose the outputs take."""
        self.target_mean.copy_(mean)
        self.target_std.copy_(std)

    def normalize(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean) / self.target_std

    def denormalize(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self.target_std + self.target_mean

    @torch.no_grad()
    def predict(
        self, features: torch.Tensor | np.ndarray, pose_amplitude: float | torch.Tensor | None = POSE_AMPLITUDE
    ) -> Motion:
        """The motion for one utterance's `(T, 28, C)` windows, in the actor's coefficients. The
        head pose is restyled to `pose_amplitude` (`restyle_pose`); None keeps the LSTM's own."""
        was_training = self.training
        self.eval()
        device = self.target_mean.device
        features = torch.as_tensor(features, dtype=torch.float32)
        # The convolutions' activations are ~15 KB a frame (0.2 GB for 10 minutes of speech at
        # once); frame codes are independent, so they are made a chunk at a time.
        codes = torch.cat(
            [
                self.encode(features[first : first + PREDICT_CHUNK_FRAMES].to(device)[None])[0]
                for first in range(0, len(features), PREDICT_CHUNK_FRAMES)
            ]
        )
        hidden, _ = self.lstm(codes[None])
        outputs = self.head(hidden)[0]
        if pose_amplitude is not None:
            outputs = torch.cat(
                [
                    outputs[:, : self.exp_dim],
                    restyle_pose(outputs[:, self.exp_dim :], torch.as_tensor(pose_amplitude).to(outputs)),
                ],
                dim=-1,
            )
        outputs = self.denormalize(outputs)
        self.train(was_training)
        return Motion.from_targets(outputs, self.exp_dim)

    def save(self, path: str | os.PathLike, face_model: str, extra: dict | None = None) -> None:
        """Weights, style statistics and config, for the named face model, atomically."""
        write_checkpoint(
            path,
            {
                "format_version": CHECKPOINT_FORMAT_VERSION,
                "config": asdict(self.config),
                "exp_dim": self.exp_dim,
                "face_model": face_model,
                "state_dict": self.state_dict(),
                **(extra or {}),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, face_model: str | None = None) -> AudioToPose:
        """A checkpoint from `save` (weights only: no code runs from the file); with `face_model`
        given, it must have been trained on that face model's coefficients."""
        return cls.load_checkpoint(path, face_model)[0]

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike, face_model: str | None = None) -> tuple[AudioToPose, dict]:
        """`load`, and the whole checkpoint dict (with what `save` got as `extra`)."""
        hint = "rerun `talkface pretrain audio2pose`"
        checkpoint = read_checkpoint(path, "audio2pose", CHECKPOINT_FORMAT_VERSION, hint)
        if face_model is not None and checkpoint.get("face_model") != face_model:
            raise InputError(
                f"{path}: audio2pose model trained for face model {checkpoint.get('face_model')!r}, "
                f"not {face_model!r}; pass the same --face-model or retrain it"
            )
        with malformed_checkpoint(path, "audio2pose", hint):
            config = dict(checkpoint["config"])
            features = FeatureConfig(**config.pop("features"))
            config["conv_channels"] = tuple(config["conv_channels"])
            config["embedding"] = tuple(config["embedding"])
            model = cls(checkpoint["exp_dim"], AudioToPoseConfig(**config, features=features))
            model.load_state_dict(checkpoint["state_dict"])
        model.face_model = checkpoint["face_model"]
        return model, checkpoint


@dataclass(frozen=True)
class LossWeights:
    """Yi et al.'s loss: MSE(exp) + 0.2 MSE(pose) + 0.01 sum|dpose/dt|^2 + 1e-4 sum|dexp/dt|^2."""

    pose: float = 0.2
    pose_smooth: float = 0.01
    exp_smooth: float = 1e-4


def motion_loss(
    outputs: torch.Tensor, targets: torch.Tensor, exp_dim: int, weights: LossWeights = LossWeights()
) -> dict[str, torch.Tensor]:
    """The loss terms for `(B, T, D)` outputs and targets (both normalised). The smoothness terms
    sum the squared frame-to-frame change over coefficients and average over frames; they act on
    the outputs only, damping jitter the targets may not have."""
    exp, pose = outputs[..., :exp_dim], outputs[..., exp_dim:]
    terms = {
        "exp": torch.mean((exp - targets[..., :exp_dim]) ** 2),
        "pose": torch.mean((pose - targets[..., exp_dim:]) ** 2),
        "pose_smooth": (pose.diff(dim=-2) ** 2).sum(-1).mean() if outputs.shape[-2] > 1 else outputs.new_zeros(()),
        "exp_smooth": (exp.diff(dim=-2) ** 2).sum(-1).mean() if outputs.shape[-2] > 1 else outputs.new_zeros(()),
    }
    terms["total"] = (
        terms["exp"]
        + weights.pose * terms["pose"]
        + weights.pose_smooth * terms["pose_smooth"]
        + weights.exp_smooth * terms["exp_smooth"]
    )
    return terms
