"""The audio2pose network's loss terms, normalisation and checkpoints."""

import numpy as np
import pytest
import torch

import audio2pose.model
from audio2pose.features import FeatureConfig
from audio2pose.metrics import mouth_aperture, pearson, pose_similarity
from audio2pose.model import (
    STD_FLOOR,
    AudioToPose,
    AudioToPoseConfig,
    LossWeights,
    match_speed,
    motion_loss,
    restyle_pose,
    target_statistics,
    window_spread,
)
from recon3d.errors import InputError
from recon3d.facemodels import load_face_model

E = 4  # expression coefficients in the hand-made examples


def test_loss_terms_on_hand_made_tensors():
    targets = torch.zeros(1, 5, E + 6)
    outputs = torch.zeros(1, 5, E + 6)
    outputs[..., 0] = 2.0  # exp error 2 on one of 4 coefficients: MSE = 4 / (4 + 0) ... per entry
    outputs[..., E:] = torch.arange(5.0)[:, None] * 0.5  # every pose coefficient ramps 0.5 per frame
    terms = motion_loss(outputs, targets, E)
    assert terms["exp"].item() == pytest.approx(4 / E)
    assert terms["pose"].item() == pytest.approx(float((torch.arange(5.0) * 0.5).square().mean()))
    assert terms["pose_smooth"].item() == pytest.approx(6 * 0.25)  # sum over 6 coefficients of 0.5^2
    assert terms["exp_smooth"].item() == 0
    w = LossWeights()
    expected = terms["exp"] + 0.2 * terms["pose"] + 0.01 * terms["pose_smooth"] + 1e-4 * terms["exp_smooth"]
    assert (w.pose, w.pose_smooth, w.exp_smooth) == (0.2, 0.01, 1e-4)
    assert terms["total"].item() == pytest.approx(expected.item())
    perfect = motion_loss(targets, targets, E)
    assert all(value.item() == 0 for value in perfect.values())
    assert motion_loss(outputs[:, :1], targets[:, :1], E)["pose_smooth"].item() == 0  # one frame


def test_target_statistics_share_one_expression_scale():
    targets = torch.zeros(100, E + 6)
    targets[:, 0] = torch.linspace(-1, 1, 100)  # one moving coefficient, three still ones
    targets[:, E] = torch.linspace(0, 0.3, 100)
    targets[:, E + 1] = 5.0
    mean, std = target_statistics(targets, E)
    exp_rms = targets[:, 0].std(unbiased=False) / 2  # sqrt(var / 4)
    torch.testing.assert_close(std[:E], exp_rms.expand(E))
    assert std[E].item() == pytest.approx(targets[:, E].std(unbiased=False).item())
    assert std[E + 1].item() == pytest.approx(STD_FLOOR) and mean[E + 1].item() == 5.0


def tiny_model() -> AudioToPose:
    torch.manual_seed(0)
    return AudioToPose(
        E,
        AudioToPoseConfig(
            conv_channels=(8, 8), embedding=(16,), lstm_hidden=8, lstm_layers=1, features=FeatureConfig(phones=False)
        ),
    )


def test_predict_denormalizes_with_the_style():
    model = tiny_model()
    features = torch.randn(9, 28, 12)
    plain = model.predict(features)
    mean, std = torch.randn(E + 6), torch.rand(E + 6) + 0.5
    model.set_style(mean, std)
    styled = model.predict(features)
    torch.testing.assert_close(styled.targets(), plain.targets() * std + mean)
    assert styled.num_frames == 9 and styled.angle.shape == (9, 3) and styled.trans.shape == (9, 3)
    np.testing.assert_allclose(styled.angle_degrees(), np.degrees(styled.angle.numpy()), rtol=1e-6)


def test_restyle_pose_centres_and_scales_each_coefficient():
    t = torch.linspace(0, 1, 50)[:, None]
    pose = torch.cat([3 + 2 * torch.sin(6 * t), -1 + 0.1 * t, torch.full_like(t, 4.0), t.square(), -t, 0 * t], dim=1)
    styled = restyle_pose(pose, 0.5)
    torch.testing.assert_close(styled.mean(0), torch.zeros(6), atol=1e-6, rtol=0)
    spread = styled.square().mean(0).sqrt()
    torch.testing.assert_close(spread[[0, 1, 3, 4]], torch.full((4,), 0.5))
    assert spread[2] == 0 and spread[5] == 0  # a still coefficient stays still
    assert pearson(styled[:, 0].numpy(), pose[:, 0].numpy()) == pytest.approx(1.0)  # the rhythm is kept


def test_predict_restyles_only_the_pose():
    model = tiny_model()
    model.set_style(torch.randn(E + 6), torch.rand(E + 6) + 0.5)
    features = torch.randn(20, 28, 12)
    raw, styled = model.predict(features, pose_amplitude=None), model.predict(features, pose_amplitude=0.25)
    torch.testing.assert_close(styled.exp, raw.exp)
    pose_std = model.target_std[E:]
    torch.testing.assert_close(styled.angle.mean(0), model.target_mean[E : E + 3], atol=1e-5, rtol=0)
    torch.testing.assert_close(styled.angle.std(0, unbiased=False), 0.25 * pose_std[:3], rtol=1e-4, atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    model.set_style(torch.randn(E + 6), torch.rand(E + 6) + 0.5)
    model.save(tmp_path / "a2p.pt", "some-model", {"step": 3})
    loaded = AudioToPose.load(tmp_path / "a2p.pt", "some-model")
    assert loaded.config == model.config and loaded.exp_dim == E and loaded.face_model == "some-model"
    features = torch.randn(7, 28, 12)
    torch.testing.assert_close(loaded.predict(features).targets(), model.predict(features).targets())
    with pytest.raises(InputError, match="trained for face model 'some-model'"):
        AudioToPose.load(tmp_path / "a2p.pt", "other-model")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a torch checkpoint"):
        AudioToPose.load(tmp_path / "junk.pt")
    torch.save(
        {"format_version": 1, "config": {}, "exp_dim": 3, "face_model": "x", "state_dict": {}}, tmp_path / "bad.pt"
    )
    with pytest.raises(InputError, match="malformed audio2pose checkpoint"):
        AudioToPose.load(tmp_path / "bad.pt")


def test_mouth_aperture_follows_the_jaw():
    model = load_face_model("builtin")
    exp = torch.zeros(3, model.layout.exp_dim)
    # The builtin model's expression modes are PCA of real talking: find the one that opens the
    # mouth most and check the aperture grows with it.
    base = mouth_aperture(model, torch.zeros(model.layout.id_dim), exp[:1])[0]
    effects = [
        mouth_aperture(model, torch.zeros(model.layout.id_dim), torch.eye(model.layout.exp_dim)[i : i + 1] * 2)[0]
        - base
        for i in range(model.layout.exp_dim)
    ]
    k = int(np.argmax(np.abs(effects)))
    exp[:, k] = torch.tensor([-1.0, 0.0, 1.0]) * np.sign(effects[k])
    aperture = mouth_aperture(model, torch.zeros(model.layout.id_dim), exp)
    assert aperture[0] < aperture[1] < aperture[2] and 0 < aperture[1] < 0.5


def test_pearson_and_pose_similarity():
    x = np.sin(np.linspace(0, 6, 50))
    assert pearson(x, 2 * x + 1) == pytest.approx(1) and pearson(x, -x) == pytest.approx(-1)
    assert pearson(x, np.ones(50)) == 0.0
    real = np.stack([np.linspace(-5, 5, 100)] * 3, 1)
    same = pose_similarity(real, real)
    assert same["hs"] == 1 and same["w1_yaw"] == 0
    shifted = pose_similarity(real, real + np.array([2.0, 0.0, 20.0]))
    assert shifted["w1_pitch"] == pytest.approx(2) and shifted["hs_pitch"] == pytest.approx(0.8)
    assert shifted["hs_roll"] == 0 and shifted["hs"] == pytest.approx((0.8 + 1 + 0) / 3)
    static = pose_similarity(real, np.zeros((1, 3)))  # a still head at the mean: W1 = mean |x|
    assert static["w1_pitch"] == pytest.approx(np.abs(real[:, 0]).mean())


def test_long_speech_is_predicted_a_chunk_of_frames_at_a_time_as_at_once(monkeypatch):
    model = tiny_model()
    features = torch.randn(25, 28, 12)
    whole = model.predict(features, pose_amplitude=None).targets()
    with torch.no_grad():
        torch.testing.assert_close(model.denormalize(model.eval()(features[None])[0]), whole)  # one pass
    monkeypatch.setattr(audio2pose.model, "PREDICT_CHUNK_FRAMES", 7)  # 4 chunks, the last of 4 frames
    torch.testing.assert_close(model.predict(features, pose_amplitude=None).targets(), whole)


def test_window_spread_is_how_much_less_a_short_stretch_of_footage_sweeps():
    t = np.arange(500)
    pose = np.stack([np.sin(2 * np.pi * t / 500), np.sin(2 * np.pi * t / 20), np.zeros(500)], 1)
    short, whole = window_spread(pose, 50), window_spread(pose, 500)
    # A tenth of a slow sway sweeps a fraction of its range; a fast one sweeps all of it in any window.
    assert short[0] < 0.4 and short[1] == pytest.approx(1.0, abs=0.05)
    assert short[2] == 1.0 and np.array_equal(whole, np.ones(3))
    assert window_spread(pose, 250)[0] > short[0]


def test_match_speed_slows_a_jittery_head_to_the_actors_pace_and_keeps_its_spread():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    reference = np.stack([np.sin(2 * np.pi * t / 100), 0.5 * np.sin(2 * np.pi * t / 80)], 1)
    jittery = np.stack([np.sin(2 * np.pi * t / 90), np.zeros(400)], 1) + 0.3 * rng.standard_normal((400, 2))
    slowed = match_speed(jittery, reference)
    assert np.all(np.diff(slowed, axis=0).std(0) < np.diff(jittery, axis=0).std(0) / 2)
    assert np.allclose(slowed.std(0), jittery.std(0)) and np.allclose(slowed.mean(0), jittery.mean(0))
    # The slow sway is kept: it still follows the original's.
    assert np.corrcoef(slowed[:, 0], np.sin(2 * np.pi * t / 90))[0, 1] > 0.9
    calm = 0.01 * reference
    assert np.array_equal(match_speed(calm, reference), calm)
