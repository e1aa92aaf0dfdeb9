"""`personalize` on real clips: the bundle it writes, resuming after an interruption, bad inputs."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import re
import shutil

import numpy as np
import pytest
import torch

from audio2pose.features import num_video_frames
from audio2pose.metrics import articulation_scores, mouth_aperture
from audio2pose.tts import FliteSynthesizer, synthesize_text
from personalize import pipeline
from personalize.bundle import FRAMES, LOG_NAME, MANIFEST_NAME, STAGES, Actor, ActorBundle, file_sha256
from personalize.generate import GenerateConfig, plan_speech
from personalize.pipeline import PersonalizeConfig, personalize
from recon3d.errors import InputError
from recon3d.track import track_video
from recon3d.video import read_audio, read_frames
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
    # As a job killed during the refine stage leaves it: earlier stages recorded, later ones not.
    # (Late stages, so that the resumed runs are quick; tests/personalize/test_jobs.py kills anywhere.)
    bundle = ActorBundle.open(root)
    for name in ("refine", "articulation"):
        bundle.forget(name)
    manifest = bundle.manifest
    with pytest.raises(InputError, match="unfinished .*stage refine"):
        Actor.load(root)

    ran = []
    for name, run in list(pipeline.STAGE_RUNNERS.items()):
        monkeypatch.setitem(pipeline.STAGE_RUNNERS, name, lambda ctx, run=run, name=name: ran.append(name) or run(ctx))
    personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    assert ran == ["refine", "articulation"]
    resumed = json.loads((root / MANIFEST_NAME).read_text())
    for name in STAGES[: STAGES.index("refine")]:
        assert resumed["stages"][name] == manifest["stages"][name]
    Actor.load(root)

    # A changed setting reruns its stage and those after it, not the ones before.
    ran.clear()
    config = tiny_config()
    config.refine = dataclasses.replace(config.refine, steps=2)
    personalize(clips / ACTOR_CLIP, root, config, progress=False)
    assert ran == ["refine", "articulation"]
    assert json.loads((root / MANIFEST_NAME).read_text())["stages"]["refine"]["metrics"]["steps"] == 2


def test_voice_matching_can_be_left_out_and_doing_so_reruns_the_voice_stage_and_later_ones(
    actor_dir, clips, tmp_path, monkeypatch
):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    ran = []
    for name, run in list(pipeline.STAGE_RUNNERS.items()):
        monkeypatch.setitem(pipeline.STAGE_RUNNERS, name, lambda ctx, run=run, name=name: ran.append(name) or run(ctx))
    personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    assert ran == []
    config = tiny_config()
    config.voice = dataclasses.replace(config.voice, match=False)
    personalize(clips / ACTOR_CLIP, root, config, progress=False)
    assert ran == ["voice", "refine", "articulation"]
    voice = json.loads((root / MANIFEST_NAME).read_text())["stages"]["voice"]["metrics"]
    assert voice == {"base_voice": "rms", "matched": False}
    assert Actor.load(root).voice.target is None


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
    bundle = ActorBundle.open(root)
    bundle.manifest["settings"]["face_model_name"] = "ict-facekit"
    bundle.write_manifest()
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


def bundle_contents(root) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def noise_video(path, seconds: float = 3.0):
    """Frames of noise (no face) with a soundtrack that passes the speech checks."""
    frames = np.random.default_rng(0).integers(0, 256, (round(25 * seconds), 64, 64, 3), np.uint8)
    return encode_video(path, frames, audio=speech_like(seconds))


def face_leaving_video(clips, path):
    """ACTOR_CLIP with the face gone (blank frames) from 1.6 s to 2.8 s: longer than tracking fills."""
    frames = read_frames(clips / ACTOR_CLIP)
    frames[40:70] = 0
    return encode_video(path, frames, audio=read_audio(clips / ACTOR_CLIP))


def test_another_video_into_a_finished_bundle_is_refused_and_changes_nothing(actor_dir, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    before = bundle_contents(root)
    video = noise_video(tmp_path / "noface.mp4")
    with pytest.raises(InputError, match="already the actor bundle of another video .*--overwrite"):
        personalize(video, root, tiny_config(), progress=False)
    assert bundle_contents(root) == before
    # --overwrite may replace it, but the video is checked first: no face, and the bundle stays.
    with pytest.raises(InputError, match="no face found"):
        personalize(video, root, tiny_config(), progress=False, overwrite=True)
    assert bundle_contents(root) == before
    Actor.load(root)


@pytest.mark.parametrize("case, message", [("no_face", "no face found"), ("face_leaves", "no face from 00:01.60")])
def test_a_refused_personalize_leaves_nothing(clips, tmp_path, case, message):
    video = noise_video(tmp_path / "in.mp4") if case == "no_face" else face_leaving_video(clips, tmp_path / "in.mp4")
    with pytest.raises(InputError, match=message):
        personalize(video, tmp_path / "new" / "actor", tiny_config(), progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.mp4"]
    # Into an existing directory that is not yet a bundle: it keeps what it held, and nothing more.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own")
    with pytest.raises(InputError, match=message):
        personalize(video, tmp_path / "mine", tiny_config(), progress=False)
    assert sorted(path.name for path in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def rerecord(root, name: str) -> None:
    """Records bundle file `name`'s current bytes as what its stage wrote (as a bug writing a bad
    file would have): only reading it can tell it is corrupt."""
    bundle = ActorBundle.open(root, verify_files=False)
    stage = next(stage for stage in bundle.manifest["stages"].values() if name in stage["files"])
    stage["files"][name] = {"sha256": file_sha256(root / name), "bytes": (root / name).stat().st_size}
    bundle.write_manifest()


def test_a_corrupt_frames_archive_is_one_line(actor_dir, clips, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    # A damaged frame inside the archive (stored, so its CRC catches it), recorded as written.
    with open(root / FRAMES, "r+b") as f:
        f.seek((root / FRAMES).stat().st_size // 2)
        f.write(b"\0" * 64)
    rerecord(root, FRAMES)
    actor = Actor.load(root)
    with pytest.raises(InputError, match=r"frames.zip is corrupt .*talkface personalize .*--overwrite"):
        with actor.frames() as frames:
            [frames[i] for i in range(len(frames))]
    size = (root / FRAMES).stat().st_size
    with open(root / FRAMES, "r+b") as f:
        f.truncate(size // 2)
    rerecord(root, FRAMES)
    with pytest.raises(InputError, match=r"frames.zip is corrupt \(File is not a zip file\)"):
        with Actor.load(root).frames():
            pass
    # Damaged after it was recorded, a resume redoes its stage (alone).
    with open(root / FRAMES, "ab") as f:
        f.write(b"junk")
    bundle = personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    assert bundle.manifest["stages"]["track"] == actor.bundle.manifest["stages"]["track"]
    with Actor.load(root).frames() as frames:
        assert frames[len(frames) - 1].shape == (224, 224, 3)


class Payload:
    """Unpickled, it would make a file: proof that code ran from a bundle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", ["coeffs.npz", "audio2pose.pt", "voice.npz", "mouth.npz", "refine.pt"])
def test_a_bundle_file_never_runs_code_and_a_bad_one_points_at_personalize(actor_dir, tmp_path, name):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    marker = tmp_path / "ran"
    if name.endswith(".pt"):
        torch.save({"format_version": 1, "state_dict": Payload(marker)}, root / name)
    else:
        np.savez(root / name, format_version=np.array(1), payload=np.array([Payload(marker)], dtype=object))
    assert not marker.exists()
    rerecord(root, name)
    hint = r"`talkface personalize \S+ --actor \S+ --overwrite`"
    with pytest.raises(InputError, match=rf"bundle file {name} is corrupt .*{hint}"):
        Actor.load(root)
    assert not marker.exists()


def test_an_edited_manifest_is_not_used(actor_dir, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    manifest["settings"]["photo"] = True  # would make the video actor a photo actor
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    with pytest.raises(InputError, match="manifest.json: edited or damaged since talkface wrote it"):
        Actor.load(root)


def test_a_resume_removes_what_killed_runs_left_and_two_at_once_are_refused(actor_dir, clips, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    # What SIGKILL leaves of `atomic_path`: temporaries beside the bundle's files.
    left = [root / ".frames.0123abcd.tmp.zip", root / ".manifest.89abcdef.tmp.json", root / ".track.00000000.tmp.npz"]
    for path in left:
        path.write_bytes(b"half written")
    (root / ".notes.tmp.txt").write_text("not ours")
    with open(root / pipeline.LOCK_NAME, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running personalize holds it
        with pytest.raises(InputError, match="another `talkface personalize` is writing this bundle"):
            personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
        assert all(path.exists() for path in left)
    personalize(clips / ACTOR_CLIP, root, tiny_config(), progress=False)
    assert not any(path.exists() for path in left) and (root / ".notes.tmp.txt").exists()
    assert not (root / pipeline.LOCK_NAME).exists()
    # The refused one leaves a new bundle, that the other is making, alone.
    (tmp_path / "new").mkdir()
    with open(tmp_path / "new" / pipeline.LOCK_NAME, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (tmp_path / "new" / FRAMES).write_bytes(b"the other run's")
        with pytest.raises(InputError, match="another `talkface personalize` is writing this bundle"):
            personalize(clips / ACTOR_CLIP, tmp_path / "new", tiny_config(), progress=False)
        assert (tmp_path / "new" / FRAMES).read_bytes() == b"the other run's"


# ------------------------------------------------------------------------------------ warnings


def personalize_warnings(video, root, caplog) -> list[str]:
    """Personalizes `video` into `root` (the tiny preset); the talkface logger's warnings."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="talkface"):
        personalize(video, root, tiny_config(), progress=False)
    return [r.getMessage() for r in caplog.records if r.name == "talkface" and r.levelno >= logging.WARNING]


def test_a_soundtrack_covering_less_than_half_the_video_is_warned_of(actor_dir, clips, flite, tmp_path, caplog):
    # 7 s of the clip's frames (played forward, then back), and an audio stream of its first 2.8 s only
    # (the voice needs a second of voiced speech).
    frames = read_frames(clips / ACTOR_CLIP)
    frames = np.concatenate([frames, frames[::-1][: 175 - len(frames)]])
    video = encode_video(tmp_path / "clip.mp4", frames, audio=read_audio(clips / ACTOR_CLIP)[: 16000 * 28 // 10])
    warned = [w for w in personalize_warnings(video, tmp_path / "actor", caplog) if "sound in" in w]
    assert len(warned) == 1 and re.fullmatch(
        r"clip\.mp4: sound in only 4\d% of the video \(3\.0 of 7\.0 s; its audio stream lasts 2\.8 s\): the "
        "actor's talking style, mouth and voice are learned from its speech, the silent rest teaches a face that "
        r"does not speak; give a video of the actor speaking throughout \(or --end where the speech ends\)",
        warned[0],
    )
    assert warned[0] in (tmp_path / "actor" / LOG_NAME).read_text()  # and in the bundle's log
    Actor.load(tmp_path / "actor")  # a warning: the actor is made all the same
    # Speech throughout (the session's actor): no warning.
    assert "sound in only" not in (actor_dir / LOG_NAME).read_text()


def mouth_covered_video(clips, path):
    """The first 2.4 s of ACTOR_CLIP with a skin-coloured rectangle over the mouth in every frame:
    the lips' box where the tracker finds them, a quarter of its width wider and half its height
    taller on each side."""
    frames = read_frames(clips / ACTOR_CLIP)[:60]
    mouths = track_video(clips / ACTOR_CLIP, progress=False).ibug68[:60, 48:68]
    for frame, mouth in zip(frames, mouths):
        (x0, y0), (x1, y1) = mouth.min(0), mouth.max(0)
        x0, x1, y0, y1 = (
            round(v) for v in (x0 - (x1 - x0) / 4, x1 + (x1 - x0) / 4, y0 - (y1 - y0) / 2, y1 + (y1 - y0) / 2)
        )
        frame[y0:y1, x0:x1] = frame[y0 - 6 : y0 - 2, x0:x1].reshape(-1, 3).mean(0)  # the skin just above it
    return encode_video(path, frames, audio=read_audio(clips / ACTOR_CLIP)[: 60 * 640])


def test_a_mouth_covered_all_through_the_video_is_warned_of(actor_dir, clips, flite, tmp_path, caplog):
    video = mouth_covered_video(clips, tmp_path / "covered.mp4")
    warned = [w for w in personalize_warnings(video, tmp_path / "actor", caplog) if "mouth" in w]
    assert len(warned) == 1 and re.fullmatch(
        r"covered\.mp4: the actor's mouth cannot be learned from this video: its area shows next to no detail "
        r"\(0\.0\d of the face's, a seen mouth's 0\.2 or more\), as if covered; give a video where the mouth is "
        "seen while the actor speaks",
        warned[0],
    )
    assert warned[0] in (tmp_path / "actor" / LOG_NAME).read_text()
    # The mouth seen (the session's actor, the same clip uncovered): no warning.
    assert "mouth cannot be learned" not in (actor_dir / LOG_NAME).read_text()
