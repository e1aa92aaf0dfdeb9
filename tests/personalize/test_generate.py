"""`generate`: frame planning per pose mode, the output video, and bad inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from audio2pose.blinks import BlinkConfig, runs
from audio2pose.features import load_speech
from audio2pose.model import Motion
from personalize.bundle import MANIFEST_NAME, Actor
from personalize.generate import GenerateConfig, check_speech, generate, ping_pong, plan_frames, plan_speech
from personalize.samples import sample_speech
from recon3d.errors import InputError
from recon3d.facemodel import CoeffLayout
from recon3d.video import probe, read_audio, read_frames
from render.synthesis import FaceWarper
from tests.personalize.test_pipeline import speech_like


def swaying_motion(num_frames: int, exp_dim: int = 4) -> Motion:
    """A head swaying in roll (period 40 frames) with a little pitch and yaw."""
    t = torch.arange(num_frames, dtype=torch.float32)
    angle = torch.stack([0.02 * torch.sin(t / 9), 0.05 * torch.sin(t / 13), 0.1 * torch.sin(2 * torch.pi * t / 40)], 1)
    return Motion(exp=torch.randn(num_frames, exp_dim), angle=angle, trans=0.01 * torch.randn(num_frames, 3))


def test_ping_pong_plays_forward_then_back():
    assert ping_pong(9, 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert ping_pong(3, 1).tolist() == [0, 0, 0]


def test_pose_modes_take_the_pose_from_where_they_say():
    rng = np.random.default_rng(0)
    t = np.arange(200)[:, None]
    # The filmed head swings more slowly than the predicted one, in all three angles.
    recon_angle = np.radians(np.array([3.0, 6.0, 8.0]) * np.sin(t / np.array([11.0, 17.0, 15.0]))).astype(np.float32)
    recon_trans = rng.normal(0, 0.05, (200, 3)).astype(np.float32)
    motion = swaying_motion(120)
    recon = dataclasses.replace(
        CoeffLayout(2, 4, 0).zeros(200), angle=torch.from_numpy(recon_angle), trans=torch.from_numpy(recon_trans)
    )
    render = GenerateConfig(synthesis="render")
    reassign = plan_frames(motion, recon, "reassign", render)
    predicted = plan_frames(motion, recon, "predicted", render)
    source = plan_frames(motion, recon, "source", render)
    for plan in (reassign, predicted, source):
        assert plan.num_frames == 120
        np.testing.assert_array_equal(plan.exp, motion.exp.numpy())
    # reassign and predicted share the keyframe-matched backgrounds; reassign takes their poses.
    np.testing.assert_array_equal(reassign.background, predicted.background)
    np.testing.assert_array_equal(reassign.angle, recon_angle[reassign.background])
    np.testing.assert_array_equal(reassign.trans, recon_trans[reassign.background])
    np.testing.assert_array_equal(predicted.angle, motion.angle.numpy())
    # The matched frames follow the predicted roll (which the keyframes are taken on).
    roll_error = np.abs(np.degrees(reassign.angle[:, 2] - predicted.angle[:, 2])).mean()
    assert roll_error < np.abs(np.degrees(recon_angle[:120, 2] - predicted.angle[:, 2])).mean() / 2
    # source: the actor's own frames in order, with their own poses.
    np.testing.assert_array_equal(source.background, np.arange(120))
    np.testing.assert_array_equal(source.angle, recon_angle[:120])
    with pytest.raises(ValueError, match="unknown pose mode"):
        plan_frames(motion, recon, "mirror")
    # Image synthesis warps the head to the predicted pose itself: its backgrounds hold or play on
    # (never faster than the video, nor backwards) from frames nearer the pose than the keyframes'.
    held = plan_frames(motion, recon, "predicted", GenerateConfig(synthesis="image"))
    np.testing.assert_array_equal(held.angle, motion.angle.numpy())
    steps = np.diff(held.background)
    assert ((steps == 0) | (steps == 1)).mean() > 0.9
    mismatch = lambda plan: np.abs(np.degrees(recon_angle[plan.background] - plan.angle)).sum(1).mean()  # noqa: E731
    assert mismatch(held) < mismatch(predicted)


@pytest.fixture(scope="module")
def actor(actor_dir) -> Actor:
    return Actor.load(actor_dir)


@pytest.mark.parametrize("mode", ["reassign", "predicted", "source"])
def test_output_is_in_sync_with_the_speech_at_the_actor_size(actor, tmp_path, mode):
    speech = sample_speech()
    out = tmp_path / "talk.mp4"
    result = generate(actor, speech, out, GenerateConfig(pose_mode=mode), progress=False)
    info = probe(out)
    audio_seconds = len(read_audio(speech)) / 16000
    assert abs(info.duration - audio_seconds) <= 1 / 25 + 1e-3
    assert (info.width, info.height) == actor.frame_size and info.has_audio
    assert result.num_frames == round(audio_seconds * 25)
    # The output is the speech, from its first sample: same waveform at the start.
    original, muxed = read_audio(speech)[:8000], read_audio(out)[:8000]
    assert np.corrcoef(original, muxed)[0, 1] > 0.9
    frames = read_frames(out)
    # The face moves with the speech (the mouth region changes from frame to frame).
    crop = actor.recon.crop
    mouth = frames[
        :,
        int(crop.y0 + 0.55 * crop.side) : int(crop.y0 + 0.8 * crop.side),
        int(crop.x0 + 0.3 * crop.side) : int(crop.x0 + 0.7 * crop.side),
    ].astype(np.float32)
    assert np.abs(np.diff(mouth, axis=0)).mean() > 0.5


def test_the_refiner_changes_only_the_face(actor, tmp_path):
    speech = sample_speech()
    refined, raw = tmp_path / "refined.mp4", tmp_path / "raw.mp4"
    assert actor.refiner is not None
    generate(actor, speech, refined, GenerateConfig(pose_mode="source", synthesis="render"), progress=False)
    generate(actor, speech, raw, GenerateConfig(pose_mode="source", synthesis="render", refine=False), progress=False)
    with_gan, without = read_frames(refined).astype(np.float32), read_frames(raw).astype(np.float32)
    assert with_gan.shape == without.shape
    change = np.abs(with_gan - without).mean((0, 3))
    crop = actor.recon.crop
    x0, y0 = int(crop.x0 + 0.3 * crop.side), int(crop.y0 + 0.35 * crop.side)
    face = change[y0 : int(y0 + 0.4 * crop.side), x0 : int(x0 + 0.4 * crop.side)].mean()
    # Far from the face (the frame's corner) only the video codec differs.
    assert face > 3 and face > 5 * change[:20, :20].mean()


def laplacian_variance(images: np.ndarray) -> float:
    return float(
        np.mean([cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for image in images])
    )


def test_synthesized_faces_are_as_sharp_as_the_video_and_the_rest_is_the_video(actor, tmp_path):
    out = tmp_path / "talk.mp4"
    result = generate(actor, sample_speech(), out, GenerateConfig(pose_mode="source"), progress=False)
    made = read_frames(out)
    with actor.frames() as frames:
        filmed = np.stack([frames[int(t)] for t in ping_pong(result.num_frames, len(frames))])
    crop = actor.recon.crop
    face = np.s_[
        :,
        int(crop.y0 + 0.3 * crop.side) : int(crop.y0 + 0.8 * crop.side),
        int(crop.x0 + 0.3 * crop.side) : int(crop.x0 + 0.7 * crop.side),
    ]
    # The actor's own pixels, moved: as sharp as the real frames (the render path is far softer).
    assert laplacian_variance(made[face]) > 0.8 * laplacian_variance(filmed[face])
    rendered = tmp_path / "rendered.mp4"
    generate(
        actor,
        sample_speech(),
        rendered,
        GenerateConfig(pose_mode="source", synthesis="render", refine=False),
        progress=False,
    )
    assert laplacian_variance(made[face]) > 1.2 * laplacian_variance(read_frames(rendered)[face])
    # The face changed (new expressions), the frame around it did not (but for the codec).
    change = np.abs(made.astype(np.float32) - filmed).mean((0, 3))
    x0, y0, x1, y1 = FaceWarper(actor.face_model, crop, actor.recon.camera).window
    assert change[face[1:]].mean() > 2
    if y1 < change.shape[0] or x1 < change.shape[1]:
        outside = np.ones(change.shape, bool)
        outside[y0:y1, x0:x1] = False
        assert change[outside].mean() < 1.5
    assert np.isfinite(result.seam_visibility)


def write_wav(path, audio):
    wavfile.write(path, 16000, audio)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("silent", "speech is silent"),
        ("empty", "audio stream is empty|no audio"),
        ("too_long", "limit is 2 s"),
        ("not_mp4", "ending in .mp4"),
        ("missing_audio", "no such file"),
    ],
)
def test_bad_speech_or_output_fails_and_leaves_no_file(actor, tmp_path, case, message):
    audio = sample_speech()
    output = tmp_path / "out.mp4"
    config = GenerateConfig()
    if case == "silent":
        audio = write_wav(tmp_path / "silence.wav", np.zeros(16000, np.float32))
    elif case == "empty":
        audio = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32))
    elif case == "too_long":
        audio = write_wav(tmp_path / "long.wav", speech_like(3.0))
        config = GenerateConfig(max_seconds=2)
    elif case == "not_mp4":
        output = tmp_path / "out.avi"
    elif case == "missing_audio":
        audio = tmp_path / "nothing.wav"
    with pytest.raises(InputError, match=message):
        generate(actor, audio, output, config, progress=False)
    assert list(tmp_path.iterdir()) == [p for p in tmp_path.iterdir() if p.suffix == ".wav"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such actor bundle"),
        ("not_a_bundle", "not an actor bundle"),
        ("newer", "made by a newer talkface"),
    ],
)
def test_bad_bundles_fail_in_one_line(actor_dir, tmp_path, case, message):
    root = tmp_path / "actor"
    if case == "not_a_bundle":
        root.mkdir()
    elif case == "newer":
        shutil.copytree(actor_dir, root)
        manifest = json.loads((root / MANIFEST_NAME).read_text())
        manifest["format_version"] = 99
        (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=message):
        Actor.load(root)


@pytest.mark.parametrize(("seconds", "limit", "said"), [(2.51, 1, "2.5"), (1.04, 1, "1.04"), (2.96, 2.5, "3.0")])
def test_speech_over_the_limit_is_said_to_the_tenth_of_a_second(seconds, limit, said):
    audio = speech_like(seconds)[: round(seconds * 16000)]
    with pytest.raises(InputError) as refused:
        check_speech("speech.wav", audio, GenerateConfig(max_seconds=limit))
    assert str(refused.value) == (
        f"speech.wav: the speech is {said} s long, the limit is {limit:g} s; split it, or raise --max-seconds"
    )


def test_the_eyes_blink_as_asked_and_the_same_seed_gives_the_same_eyes(actor):
    audio, num_frames = load_speech(sample_speech(), None)
    config = GenerateConfig(articulation="network", eyes=BlinkConfig(blinks="40"))
    plan, _ = plan_speech(actor, audio, num_frames, config)
    again, _ = plan_speech(actor, audio, num_frames, config)
    assert np.array_equal(plan.closure, again.closure) and np.array_equal(plan.gaze, again.gaze)
    planned = runs(plan.closure > 0.5)
    assert len(planned) >= 2
    other, _ = plan_speech(actor, audio, num_frames, dataclasses.replace(config, eyes=BlinkConfig(blinks="40", seed=7)))
    assert not np.array_equal(plan.closure, other.closure)
    for changed in ({"eyes": BlinkConfig(blinks="off")}, {"pose_mode": "source"}):
        assert plan_speech(actor, audio, num_frames, dataclasses.replace(config, **changed))[0].closure is None
