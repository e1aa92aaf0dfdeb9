"""Refinement training on a real clip: pairs, one step, resuming, and a tiny fine-tuned refiner
beating the raw render on held-out frames."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.errors import InputError
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.reconstruct import reconstruct_clip
from recon3d.track import TrackConfig, track_video
from refine.actor import ActorRefiner, face_alpha
from refine.data import RefinePairs, clip_pairs, face_region, render_clip, window_indices
from refine.memory import MemoryConfig
from refine.metrics import face_box, psnr
from refine.model import Refiner
from refine.networks import NetworkConfig
from refine.train import RefineTrainConfig, RefineTrainer, refinement_psnr, train_refiner

CLIP = "vox_00010.mp4"
TINY = RefineTrainConfig(
    network=NetworkConfig(size=64, base_channels=16, max_channels=32),
    memory=MemoryConfig(slots=64),
    steps=300,
    batch_size=4,
    lr=3e-4,
    checkpoint_every=100,
    sample_every=300,
    log_every=50,
)


@pytest.fixture(scope="module")
def clip_data(clips: Path):
    """The clip's reconstruction (quick fit), crops, landmarks and 64-pixel pairs."""
    model = load_face_model("builtin")
    video = clips / CLIP
    track = track_video(video, TrackConfig(crop_size=128), progress=False)
    recon, crops = reconstruct_clip(
        video, model, FitConfig(landmark_steps=150, photometric_steps=10, render_size=64), track=track, progress=False
    )
    landmarks = track.crop.frame_to_crop(track.ibug68)
    cut = int(round(0.7 * len(crops)))
    region = face_region(landmarks[:cut], crops.shape[1], TINY.network.size)
    pairs = clip_pairs(recon, model, crops, landmarks, region)
    return model, recon, crops, region, pairs, cut


def test_windows_stay_inside_their_clip():
    clip = np.array([0, 0, 0, 1, 1])
    index = window_indices(np.arange(5), 3, clip)
    assert index.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 2], [3, 3, 4], [3, 4, 4]]


def test_pairs_hold_the_real_face_and_its_render(clip_data):
    _, _, crops, region, pairs, _ = clip_data
    assert pairs.renders.shape == pairs.reals.shape == (len(crops), 64, 64, 3)
    # The face region holds every frame's landmarks.
    assert (pairs.landmarks > 0).all() and (pairs.landmarks < 64).all()
    # The render differs from the real frame on the face, barely outside it.
    box = face_box(pairs.landmarks[0], 64)
    inside = psnr(pairs.renders[0], pairs.reals[0], box)
    assert 15 < inside < 40
    assert np.allclose(np.linalg.norm(pairs.identity, axis=1), 1, atol=1e-4)
    # One person: every frame's identity is close to the clip's mean.
    mean = pairs.identity.mean(0) / np.linalg.norm(pairs.identity.mean(0))
    assert (pairs.identity @ mean).min() > 0.9


def test_one_training_step_reduces_the_loss(clip_data):
    *_, pairs, _ = clip_data
    torch.manual_seed(0)
    trainer = RefineTrainer(
        Refiner(TINY.network, TINY.memory), dataclasses.replace(TINY, lr=1e-4, flip=False), torch.device("cpu")
    )
    batch = trainer.batch(pairs, np.arange(0, len(pairs), len(pairs) // 4)[:4])

    def reconstruction_loss() -> float:
        with torch.no_grad():
            refined, _, mask = trainer.refiner.generator(batch[0], batch[2])
            return (TINY.weights.l1 * (refined - batch[1]).abs().mean() + TINY.weights.mask * mask.mean()).item()

    before = reconstruction_loss()
    trainer.step(*batch)
    assert reconstruction_loss() < before


def test_training_resumes_where_it_stopped(clip_data, tmp_path):
    *_, pairs, cut = clip_data
    train = pairs.subset(slice(0, cut))
    config = dataclasses.replace(TINY, steps=6, checkpoint_every=3, sample_every=3, log_every=3)
    whole, whole_history = train_refiner(train, tmp_path / "whole", config, progress=False)
    train_refiner(train, tmp_path / "split", dataclasses.replace(config, steps=3), progress=False)
    resumed, resumed_history = train_refiner(train, tmp_path / "split", config, progress=False)
    assert resumed_history == whole_history
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert sorted(p.name for p in (tmp_path / "whole" / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    with pytest.raises(InputError, match="other settings"):
        train_refiner(train, tmp_path / "split", dataclasses.replace(config, lr=1e-2), progress=False)


def test_a_tiny_fine_tuned_refiner_beats_the_raw_render_on_held_out_frames(clip_data, tmp_path):
    model, recon, crops, region, pairs, cut = clip_data
    # 300 steps fit the training frames (+3 dB) but gained nothing held out with this machine's
    # packages (28.33 against the raw 28.73 dB); 600 gain +0.6 dB.
    config = dataclasses.replace(TINY, steps=600)
    refiner, history = train_refiner(
        pairs.subset(slice(0, cut)), tmp_path, config, held_out=pairs.subset(slice(cut, None)), progress=False
    )
    assert history[-1]["l1"] < history[0]["l1"]
    raw, refined = refinement_psnr(refiner, pairs.subset(slice(cut, None)))
    assert refined > raw + 0.2
    # Through the actor's path (windows, pasted back over the face) the held-out face improves too.
    rendered, coverage = render_clip(recon, model, crops)
    actor = ActorRefiner(refiner, region)
    frames = np.arange(cut, len(crops) - 1)
    out, alphas = actor.refine(rendered[cut - 1 : len(crops)], coverage[frames])
    assert out.shape == (len(frames), *crops.shape[1:]) and alphas.shape == (len(frames), *crops.shape[1:3])
    real, boxes = pairs.reals[frames], [face_box(p, 64) for p in pairs.landmarks[frames]]
    before = np.mean([psnr(region.crop(i), r, b) for i, r, b in zip(rendered[frames], real, boxes)])
    after = np.mean([psnr(region.crop(i), r, b) for i, r, b in zip(out, real, boxes)])
    assert after > before + 0.2
    # Output follows the input render (no collapse to one face): two frames refine differently.
    assert np.abs(out[0].astype(int) - out[-1].astype(int)).mean() > 1


def test_the_face_alpha_covers_the_face_and_its_holes():
    coverage = np.zeros((100, 100), np.float32)
    coverage[20:80, 30:70] = 1
    coverage[40:45, 40:50] = 0  # an eye
    alpha = face_alpha(coverage)
    assert alpha[42, 45] > 0.99 and alpha[50, 50] > 0.99
    assert alpha[5, 5] < 0.01 and 0 < alpha[50, 73] < 1


def test_a_refiner_saves_and_loads_whole(tmp_path):
    torch.manual_seed(0)
    refiner = Refiner(TINY.network, TINY.memory)
    refiner.memory.write(
        torch.nn.functional.normalize(torch.randn(3, 256), dim=1),
        torch.nn.functional.normalize(torch.randn(3, 128), dim=1),
    )
    actor = ActorRefiner(refiner, face_region(np.random.default_rng(0).uniform(40, 80, (5, 68, 2)), 128, 64))
    actor.save(tmp_path / "refine.pt")
    loaded = ActorRefiner.load(tmp_path / "refine.pt")
    assert loaded.region == actor.region
    for name, value in refiner.state_dict().items():
        assert torch.equal(value, loaded.refiner.state_dict()[name]), name
    renders = np.random.default_rng(1).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    assert np.array_equal(refiner.refine(renders), loaded.refiner.refine(renders))


def test_pairs_concatenate_into_separate_clips(clip_data):
    *_, pairs, _ = clip_data
    both = RefinePairs.concatenate([pairs.subset(slice(0, 10)), pairs.subset(slice(10, 15))])
    assert both.clip.tolist() == [0] * 10 + [1] * 5
