"""Actor bundles: manifest schema, stage resume, and detection of partial or corrupt bundles."""

import json

import pytest

from personalize.bundle import BUNDLE_FORMAT_VERSION, MANIFEST_NAME, ActorBundle, manifest_checksum
from recon3d.errors import InputError


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "actor.mp4"
    path.write_bytes(b"not really a video, but hashed like one")
    return path


def finished_bundle(root, source):
    bundle = ActorBundle.create(root, source, {"face_model": "builtin"})
    bundle.path("coeffs.npz").write_bytes(b"coefficients")
    bundle.record("reconstruct", {"steps": 10}, ["coeffs.npz"], {"landmark_error": 0.02}, 1.5)
    return bundle


def test_a_finished_stage_is_skipped_only_with_the_same_inputs_and_intact_files(tmp_path, source):
    root = tmp_path / "actor"
    finished_bundle(root, source)
    bundle = ActorBundle.open(root)
    assert bundle.manifest["format_version"] == BUNDLE_FORMAT_VERSION
    assert bundle.manifest["stages"]["reconstruct"]["metrics"] == {"landmark_error": 0.02}
    assert bundle.is_done("reconstruct", {"steps": 10})
    assert not bundle.is_done("reconstruct", {"steps": 11})
    assert not bundle.is_done("audio2pose", {})
    (root / "coeffs.npz").write_bytes(b"coefficientz")  # same size, other bytes
    assert not bundle.is_done("reconstruct", {"steps": 10})
    with pytest.raises(InputError, match=r"coeffs.npz \(stage reconstruct\) is changed since it was written"):
        ActorBundle.open(root)
    (root / "coeffs.npz").unlink()
    with pytest.raises(InputError, match="is missing; the bundle is partial or corrupt"):
        ActorBundle.open(root)
    ActorBundle.open(root, verify_files=False).forget("reconstruct")
    assert ActorBundle.open(root).manifest["stages"] == {}


def test_resuming_keeps_stages_of_the_same_video_and_another_video_needs_overwrite(tmp_path, source):
    root = tmp_path / "actor"
    finished_bundle(root, source)
    assert "reconstruct" in ActorBundle.create(root, source, {"face_model": "builtin"}).manifest["stages"]
    before = {path.name: path.read_bytes() for path in root.iterdir()}
    source.write_bytes(b"another video")
    with pytest.raises(InputError, match="already the actor bundle of another video .*--overwrite"):
        ActorBundle.create(root, source, {"face_model": "builtin"})
    assert {path.name: path.read_bytes() for path in root.iterdir()} == before
    (root / "notes.txt").write_text("the user's own file")
    assert ActorBundle.create(root, source, {"face_model": "builtin"}, overwrite=True).manifest["stages"] == {}
    # The bundle's files replaced, nothing else touched.
    assert sorted(path.name for path in root.iterdir()) == [MANIFEST_NAME, "notes.txt"]


def test_an_edited_manifest_is_reported_and_a_format_1_one_still_read(tmp_path, source):
    root = tmp_path / "actor"
    finished_bundle(root, source)
    path = root / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    assert manifest["checksum"] == manifest_checksum(manifest)
    path.write_text(json.dumps({**manifest, "settings": {**manifest["settings"], "photo": True}}))
    with pytest.raises(InputError, match="edited or damaged since talkface wrote it .*--overwrite"):
        ActorBundle.open(root)
    del manifest["checksum"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="invalid manifest at top level: 'checksum' is a required property"):
        ActorBundle.open(root)
    path.write_text(json.dumps({**manifest, "format_version": 1}))  # as talkface wrote bundles before checksums
    bundle = ActorBundle.open(root)
    bundle.write_manifest()
    assert json.loads(path.read_text())["format_version"] == BUNDLE_FORMAT_VERSION
    ActorBundle.open(root)


def test_bad_bundles_are_reported_in_one_line(tmp_path, source):
    with pytest.raises(InputError, match="no such actor bundle"):
        ActorBundle.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not an actor bundle"):
        ActorBundle.open(tmp_path / "empty")
    root = tmp_path / "actor"
    finished_bundle(root, source)
    manifest_path = root / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())

    manifest_path.write_text("{ truncated")
    with pytest.raises(InputError, match="corrupt manifest"):
        ActorBundle.open(root)
    manifest_path.write_text(json.dumps({**manifest, "format": "something-else"}))
    with pytest.raises(InputError, match="invalid manifest at format"):
        ActorBundle.open(root)
    newer = {**manifest, "format_version": BUNDLE_FORMAT_VERSION + 1}
    manifest_path.write_text(json.dumps(newer))
    with pytest.raises(InputError, match="made by a newer talkface"):
        ActorBundle.open(root)
    escaping = json.loads(json.dumps(manifest))
    escaping["stages"]["reconstruct"]["files"] = {
        "../outside.npz": manifest["stages"]["reconstruct"]["files"]["coeffs.npz"]
    }
    escaping["checksum"] = manifest_checksum(escaping)  # written so, not edited: the names are still checked
    manifest_path.write_text(json.dumps(escaping))
    with pytest.raises(InputError, match="lies outside the bundle"):
        ActorBundle.open(root)


def test_a_loaded_actor_reads_what_it_checked_while_its_bundle_is_replaced(actor_dir, tmp_path):
    """`personalize --overwrite` of another video while a generate reads the bundle: the output
    stays the loaded actor's (it showed the new person in every frame)."""
    import shutil
    import zipfile

    import cv2
    import numpy as np

    from personalize.bundle import FRAMES, TRACK, Actor, bundle_files, frame_name
    from personalize.generate import GenerateConfig, generate
    from recon3d.video import atomic_path, read_frames
    from tests.personalize.test_pipeline import speech_like

    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    actor = Actor.load(root)
    with actor.frames() as frames:
        first, count = frames[0].copy(), len(frames)
    mesh = actor.track().mesh.copy()
    # Another person's bundle renamed into place, file by file, as personalize writes one.
    for path in bundle_files(root):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    _, jpeg = cv2.imencode(".jpg", np.zeros_like(first))
    with atomic_path(root / FRAMES) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for index in range(count):
            archive.writestr(frame_name(index), jpeg.tobytes())
    with atomic_path(root / TRACK) as tmp:
        tmp.write_bytes(b"another actor's track")

    with actor.frames() as frames:
        assert np.array_equal(frames[0], first)
    assert np.array_equal(actor.track().mesh, mesh)
    out = tmp_path / "talk.mp4"
    generate(actor, speech_like(1.0), out, GenerateConfig(pose_mode="source"), progress=False)
    assert read_frames(out).mean() > 0.5 * first.mean()  # the loaded actor, not black frames
