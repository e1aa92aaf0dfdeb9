"""audio2pose training on real clips: a tiny model overfits one, corpus training resumes exactly,
per-actor fine-tuning takes the actor's style."""

import csv
import shutil

import numpy as np
import pytest
import torch

from audio2pose.model import AudioToPose, AudioToPoseConfig, target_statistics
from audio2pose.train import (
    FinetuneConfig,
    PretrainAudio2PoseConfig,
    TrainConfig,
    WindowSampler,
    finetune,
    make_optimizer,
    motion_clip,
    predict_motion,
    pretrain_audio2pose,
    train_steps,
)
from recon3d.corpus import CorpusCache
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.reconstruct import reconstruct_clip
from recon3d.track import TrackConfig, track_video

TINY_FIT = FitConfig(landmark_steps=60, photometric_steps=0)
TINY = AudioToPoseConfig(conv_channels=(16,), embedding=(32,), lstm_hidden=32, lstm_layers=1, dropout=0.0)
CORPUS = ("vox_00010", "retalk_2")


@pytest.fixture(scope="module")
def builtin():
    return load_face_model("builtin")


@pytest.fixture(scope="module")
def corpus(clips, builtin, tmp_path_factory):
    """Two real clips and their (tiny-fit) reconstructions, cached as `pretrain` caches them."""
    root = tmp_path_factory.mktemp("a2p_corpus")
    (root / "clips").mkdir()
    for stem in CORPUS:
        video = root / "clips" / f"{stem}.mp4"
        shutil.copy(clips / f"{stem}.mp4", video)
        track = track_video(video, TrackConfig(crop_size=128), progress=False)
        recon, _ = reconstruct_clip(video, builtin, TINY_FIT, track=track, progress=False)
        # As the corpus cache keeps it, and standing in for the CLI's default fit too (the fit is
        # the slow part, not what these tests are about).
        for fit in (TINY_FIT, FitConfig()):
            recon.save(CorpusCache(root / "cache").reconstruction_path(video, builtin, fit))
    return root


@pytest.fixture(scope="module")
def vox_clip(corpus, builtin):
    from recon3d.reconstruct import Reconstruction

    video = corpus / "clips" / "vox_00010.mp4"
    recon = Reconstruction.load(CorpusCache(corpus / "cache").reconstruction_path(video, builtin, TINY_FIT))
    return motion_clip(corpus / "clips" / "vox_00010.mp4", recon, TINY.features)


def test_motion_clip_pairs_frames_with_windows(vox_clip, builtin):
    assert vox_clip.features.shape == (106, 28, TINY.features.num_columns)
    assert vox_clip.targets.shape == (106, builtin.layout.exp_dim + 6)
    head, tail = vox_clip.split(0.7)
    assert (head.num_frames, tail.num_frames) == (74, 32)
    np.testing.assert_array_equal(tail.features, vox_clip.features[74:])


def test_tiny_model_overfits_a_short_real_clip(vox_clip, builtin):
    torch.manual_seed(0)
    model = AudioToPose(builtin.layout.exp_dim, TINY)
    clip = vox_clip.split(50 / 106)[0]
    config = TrainConfig(steps=400, batch_size=4, seq_len=50, lr=3e-3)
    sampler = WindowSampler([clip], config.seq_len, torch.device("cpu"))
    first = []
    last = train_steps(
        model,
        sampler,
        make_optimizer(model, config),
        config,
        progress=False,
        on_step=lambda step, terms: first.append(terms["total"]) if step == 1 else None,
    )
    print(f"loss {first[0]:.3f} -> {last['total']:.4f}")
    assert last["total"] < first[0] / 10


def read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_pretraining_resumes_exactly(corpus, builtin, tmp_path):
    def config(steps):
        return PretrainAudio2PoseConfig(
            model=TINY, train=TrainConfig(steps=steps, batch_size=4, seq_len=16), log_every=5, fit=TINY_FIT
        )

    cache = CorpusCache(corpus / "cache")
    pretrain_audio2pose(corpus / "clips", tmp_path / "whole", builtin, config(10), progress=False, cache=cache)
    pretrain_audio2pose(corpus / "clips", tmp_path / "resumed", builtin, config(5), progress=False, cache=cache)
    record = pretrain_audio2pose(
        corpus / "clips", tmp_path / "resumed", builtin, config(10), progress=False, cache=cache
    )
    whole = AudioToPose.load(tmp_path / "whole" / "audio2pose.pt", builtin.name)
    resumed = AudioToPose.load(tmp_path / "resumed" / "audio2pose.pt", builtin.name)
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value)
    history = read_history(tmp_path / "resumed" / "history.csv")
    assert [row["step"] for row in history] == ["5", "10"] and record["step"] == 10
    assert history == read_history(tmp_path / "whole" / "history.csv")
    assert float(history[-1]["val_total"]) > 0 and float(history[-1]["train_exp"]) > 0


def test_finetune_takes_the_actors_style(vox_clip, corpus, builtin):
    general = AudioToPose(builtin.layout.exp_dim, TINY)
    before = {k: v.clone() for k, v in general.state_dict().items()}
    config = FinetuneConfig(train=TrainConfig(steps=5, batch_size=2, seq_len=16))
    actor = finetune(vox_clip, general, config, progress=False)
    for name, value in general.state_dict().items():  # the general model is left alone
        torch.testing.assert_close(value, before[name])
    mean, std = target_statistics(torch.from_numpy(vox_clip.targets), builtin.layout.exp_dim)
    torch.testing.assert_close(actor.target_mean, mean)
    torch.testing.assert_close(actor.target_std, std)
    motion = predict_motion(actor, corpus / "clips" / "retalk_2.mp4", num_frames=125)  # the video's length
    assert motion.num_frames == 125 and motion.exp.shape == (125, builtin.layout.exp_dim)
    # From scratch when there is no general model.
    scratch = finetune(
        vox_clip,
        None,
        FinetuneConfig(scratch=TrainConfig(steps=3, batch_size=2, seq_len=16), model=TINY),
        progress=False,
    )
    assert scratch.exp_dim == builtin.layout.exp_dim


def test_pretrain_cli(corpus, tmp_path):
    from personalize.cli import main

    argv = [
        "pretrain",
        "audio2pose",
        "--corpus",
        str(corpus / "clips"),
        "--cache",
        str(corpus / "cache"),
        "-o",
        str(tmp_path / "out"),
        "--face-model",
        "builtin",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--lstm-hidden",
        "16",
        "--lstm-layers",
        "1",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    model = AudioToPose.load(tmp_path / "out" / "audio2pose.pt", "mediapipe-builtin")
    assert model.config.lstm_hidden == 16 and len(read_history(tmp_path / "out" / "history.csv")) == 1
