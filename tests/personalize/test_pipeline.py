"""`personalize` on real clips: the bundle it writes, resuming after an interruption, bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from audio2pose.features import num_video_frames
from audio2pose.metrics import articulation_scores, mouth_aperture
from audio2pose.tts import FliteSynthesizer, synthesize_text
from personalize import pipeline
from personalize.bundle import LOG_NAME, MANIFEST_NAME, STAGES, Actor
from personalize.generate import GenerateConfig, plan_speech
from personalize.pipeline import PersonalizeConfig, personalize
from recon3d.errors import InputError
from tests.conftest import encode_video
from tests.personalize.conftest import ACTOR_CLIP, tiny_config


def test_bundle_holds_every_stage_with_metrics_and_loads(actor_dir):
    manifest = json.loads((actor_dir / MANIFEST_NAME).read_text())
    assert sorted(manifest["stages"]) == sorted(STAGES)
    assert manifest["source"]["name"] == ACTOR_CLIP
    frames = manifest["stages"]["ingest"]["metrics"]["frames"]
    assert abs(frames - 4.2 * 25) <= 1 and manifest["stages"]["track"]["metrics"]["frames"] == frames
    assert manifest["stages"]["track"]["metrics"]["detected"] > 0.9
    # Even a 150-step landmark fit lands within a few % of the eye distance.
    assert manifest["stages"]["albedo"]["metrics"]["landmark_error"] < 0.06
    assert (actor_dir / LOG_NAME).read_text().count("albedo:") >= 1
    actor = Actor.load(actor_dir)
    assert actor.recon.num_frames == frames and actor.frame_size == (224, 224) and not actor.is_photo
    with actor.frames() as backgrounds:
        assert len(backgrounds) == frames and backgrounds[frames - 1].shape == (224, 224, 3)
    voice = manifest["stages"]["voice"]["metrics"]
    assert voice["matched"] and voice["base_voice"] == actor.voice.base_voice
    assert actor.voice.target is not None and abs(actor.voice.target.f0_hz - voice["f0_hz"]) < 0.1
    assert abs(len(actor.voice.reference) / 16000 - frames / 25) < 0.1  # all of its speech
    mouth = manifest["stages"]["articulation"]["metrics"]
    assert mouth["phones"] in ("decoded", "phone-loop") and mouth["viseme_frames"] > 0.9 * frames
    gaps = mouth_aperture(
        actor.face_model,
        actor.recon.split("cpu").id[0],
        torch.from_numpy(np.stack([actor.mouth.closed, actor.mouth.open])),
    )
    assert gaps[0] < 0.3 * gaps[1]  # the actor's closed mouth is closed, their open one open
    refine = manifest["stages"]["refine"]
    assert refine["metrics"]["refined"] and "refine.pt" in refine["files"] and actor.refiner is not None
    assert actor.refiner.refiner.size == refine["metrics"]["size"] == 32
    # The face region is a part of the crop (which also holds hair and shoulders).
    region = actor.refiner.region
    assert region.frame_width == actor.recon.crop.size and 0.3 * region.frame_width < region.side < region.frame_width
    assert (actor_dir / pipeline.REFINE_WORK / "samples" / "step_000004.png").is_file()
    assert not (actor_dir / pipeline.REFINE_WORK / "refine_train.pt").exists()


def test_the_mouth_follows_the_phones_deterministically(actor_dir, flite):
    actor = Actor.load(actor_dir)
    speech = synthesize_text("Bob paid a man.", FliteSynthesizer("rms"))
    frames = num_video_frames(len(speech.audio))
    plans = [plan_speech(actor, speech.audio, frames, GenerateConfig(), "cpu", speech.phones)[0] for _ in range(2)]
    np.testing.assert_array_equal(plans[0].exp, plans[1].exp)
    gaps = mouth_aperture(actor.face_model, actor.recon.split("cpu").id[0], torch.from_numpy(plans[0].exp))
    scores = articulation_scores(gaps, speech.phones)
    assert scores["closure_rate"] == 1.0 and scores["contrast"] > 0.5
    network = plan_speech(actor, speech.audio, frames, GenerateConfig(articulation="network"), "cpu")[0]
    # Only the mouth moved: the network's pose is kept.
    np.testing.assert_array_equal(network.angle, plans[0].angle)


def test_an_interrupted_job_resumes_at_the_stage_it_stopped_in(actor_dir, clips, tmp_path, monkeypatch):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    # As a job killed during the albedo stage leaves it: earlier stages recorded, later ones not.
    for name in ("albedo", "audio2pose", "voice", "refine", "articulation"):
        del manifest["stages"][name]
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="unfinished .*stage albedo"):
        Actor.load(root)

    ran = []
    for name, run in list(pipeline.STAGE_RUNNERS.items()):
        monkeypatch.setitem(pipeline.STAGE_RUNNERS, name, lambda ctx, run=run, name=name: ran.append(name) or run(ctx))
    personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    assert ran == ["albedo", "audio2pose", "voice", "refine", "articulation"]
    resumed = json.loads((root / MANIFEST_NAME).read_text())
    for name in ("ingest", "track", "reconstruct"):
        assert resumed["stages"][name] == manifest["stages"][name]
    Actor.load(root)

    # A changed setting reruns its stage and those after it, not the ones before.
    ran.clear()
    config = tiny_config()
    config.finetune.scratch.steps = 5
    personalize(clips / ACTOR_CLIP, root, config, progress=False)
    assert ran == ["audio2pose", "voice", "refine", "articulation"]


def test_a_corrupt_or_partial_bundle_is_reported_never_used(actor_dir, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    with open(root / "coeffs.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(InputError, match="coeffs.npz .*changed since it was written"):
        Actor.load(root)
    (root / "coeffs.npz").unlink()
    with pytest.raises(InputError, match="coeffs.npz .*missing"):
        Actor.load(root)


def test_the_bundle_remembers_its_face_model(actor_dir, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    manifest["settings"]["face_model_name"] = "ict-facekit"
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="made with face model ict-facekit .* found mediapipe-builtin"):
        Actor.load(root)


def speech_like(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize(
    "case, message",
    [
        ("short", "video too short"),
        ("no_audio", "no audio stream"),
        ("silent", "soundtrack is silent"),
        ("missing", "no such file"),
    ],
)
def test_unusable_videos_fail_before_anything_is_written(tmp_path, case, message):
    frames = np.full((25 * 3, 64, 64, 3), 128, np.uint8)
    video = tmp_path / "clip.mp4"
    if case == "short":
        encode_video(video, frames[:25], audio=speech_like(1.0))
    elif case == "no_audio":
        encode_video(video, frames)
    elif case == "silent":
        encode_video(video, frames, audio=np.zeros(16000 * 3, np.float32))
    with pytest.raises(InputError, match=message):
        personalize(video, tmp_path / "actor", PersonalizeConfig(face_model="builtin"), progress=False)
    assert not (tmp_path / "actor").exists()
