"""`talkface jobs run` on real clips with a tiny configuration, under a local Ray instance.

The module personalizes three clips once: a run of the CLI is killed (SIGKILL) once one actor
has finished and another is partway, and a rerun completes the manifest. The other tests reuse those
bundles (skipping them is quick), so the module costs about three tiny personalizations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from personalize.bundle import STAGES, Actor
from personalize.cli import main
from personalize.jobs import LOCK_NAME, SUMMARY_NAME, ActorJob, JobsConfig, ray_session, root_lock, run_jobs
from personalize.pipeline import unfinished_stages
from recon3d.errors import InputError
from tests.personalize.test_cli import assert_one_error_line

CLIPS = {"ana": "vox_00010.mp4", "ben": "vox_620900105.mp4", "cai": "vox_517600055.mp4"}
"""The three shortest clips (4.2-4.5 s)."""
TINY = {
    "face_model": "builtin",
    "crop_size": 128,
    "landmark_steps": 50,
    "photometric_steps": 2,
    "audio2pose_steps": 10,
    "refine_steps": 0,
}
"""`talkface personalize` options of a quick actor."""


def write_yaml(path: Path, videos: dict[str, Path], **defaults) -> Path:
    actors = [{"name": name, "video": str(video)} for name, video in videos.items()]
    path.write_text(yaml.safe_dump({"defaults": {**TINY, **defaults}, "actors": actors}))
    return path


def stage_records(bundle: Path) -> dict[str, tuple[str, str]]:
    """{stage: (fingerprint, finished time)} of a bundle: a stage that reran changes them."""
    path = bundle / "manifest.json"
    if not path.is_file():
        return {}
    stages = json.loads(path.read_text())["stages"]
    return {name: (stage["fingerprint"], stage["finished"]) for name, stage in stages.items()}


def in_session(sid: int) -> bool:
    """Whether a process of session `sid` is still there."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(ValueError, OSError):
            if os.getsid(int(entry.name)) == sid:
                return True
    return False


@pytest.fixture(scope="module")
def ray_here():
    """One local Ray instance for the module's in-process runs (starting one takes seconds)."""
    with ray_session():
        yield


@pytest.fixture(scope="module")
def resumed(clips: Path, flite: str, tmp_path_factory, request) -> dict:
    """The three clips' manifest: run by the CLI until an actor is done and another partway,
    killed (SIGKILL), then rerun to the end. Returns the manifest, root, the bundles' stages at the kill and both
    summaries."""
    work = tmp_path_factory.mktemp("jobs")
    manifest, root = (
        write_yaml(work / "actors.yaml", {name: clips / clip for name, clip in CLIPS.items()}),
        work / "root",
    )
    with (work / "interrupted-run.log").open("w") as log:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "personalize.cli",
                "-q",
                "jobs",
                "run",
                str(manifest),
                "--root",
                str(root),
                "--device",
                "cpu",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            assert run.poll() is None, (
                f"the run ended before it was interrupted: {(work / 'interrupted-run.log').read_text()}"
            )
            summary = json.loads((root / SUMMARY_NAME).read_text()) if (root / SUMMARY_NAME).is_file() else None
            records = {name: stage_records(root / name) for name in CLIPS}
            # Partway with three stages to go: two actors run at once on two cores, so the one
            # partway when the other is done may finish in the moment before the kill (CI).
            if (
                summary
                and any(actor["status"] == "done" for actor in summary["actors"].values())
                and any(0 < len(stages) <= len(STAGES) - 3 for stages in records.values())
            ):
                break
            time.sleep(0.2)
    finally:
        # Killed outright, with the Ray instance it started, so nothing gets to tidy up. (A Ctrl-C
        # at this point once let the run finish with exit 0, on a loaded machine.)
        os.killpg(run.pid, signal.SIGKILL)
        exit_code = run.wait()
    # Its Ray workers (process groups of their own in its session) exit when their raylet is gone.
    deadline = time.monotonic() + 60
    while in_session(run.pid):
        assert time.monotonic() < deadline, "the interrupted run's Ray workers are still running"
        time.sleep(0.5)
    # What the interrupted run left (a stage may have finished since the last look).
    summary, records = (
        json.loads((root / SUMMARY_NAME).read_text()),
        {name: stage_records(root / name) for name in CLIPS},
    )
    request.getfixturevalue("ray_here")
    rerun = run_jobs(manifest, root, JobsConfig(device="cpu"), progress=False)
    return {
        "manifest": manifest,
        "root": root,
        "at_interrupt": records,
        "interrupted": summary,
        "exit_code": exit_code,
        "log": (work / "interrupted-run.log").read_text(),
        "rerun": rerun,
    }


def test_interrupted_run_resumes_without_redoing_finished_actors_or_stages(resumed):
    assert resumed["exit_code"] == -signal.SIGKILL
    root, at_interrupt, rerun = resumed["root"], resumed["at_interrupt"], resumed["rerun"]
    for name, before in at_interrupt.items():
        after, actor = stage_records(root / name), rerun["actors"][name]
        # Stages finished before the kill are kept as they were; only the others ran.
        assert {stage: after[stage] for stage in before} == before
        assert actor["ran"] == [stage for stage in STAGES if stage not in before]
        if len(before) == len(STAGES):
            assert actor["status"] == "skipped" and actor["attempts"] == 0
        else:
            assert actor["status"] == "done" and actor["attempts"] == 1
    assert any(actor["status"] == "done" for actor in resumed["interrupted"]["actors"].values())
    assert any(0 < len(before) < len(STAGES) for before in at_interrupt.values())


def test_three_clip_manifest_completes_with_a_summary_per_actor(resumed):
    root, summary = resumed["root"], json.loads((resumed["root"] / SUMMARY_NAME).read_text())
    assert summary == resumed["rerun"]
    assert summary["format"] == "talkface-jobs" and summary["finished"] is not None
    assert sorted(summary["actors"]) == sorted(CLIPS)
    assert summary["counts"]["failed"] == summary["counts"]["pending"] == 0
    assert summary["counts"]["done"] + summary["counts"]["skipped"] == 3
    for name, actor in summary["actors"].items():
        bundle = Actor.load(root / name).bundle  # complete, every file intact
        assert actor["bundle"] == str(root / name) and actor["error"] is None
        assert list(actor["stages"]) == list(STAGES)
        for stage, record in bundle.manifest["stages"].items():
            assert actor["stages"][stage] == {key: record[key] for key in ("seconds", "finished", "metrics")}
        assert actor["stages"]["track"]["metrics"]["detected"] > 0.9
        assert bundle.manifest["settings"]["fit"]["landmark_steps"] == TINY["landmark_steps"]
        if actor["status"] == "done":
            assert actor["seconds"] > 0


def test_unfinished_stages_are_those_personalize_would_run(resumed):
    ana, ben = resumed["rerun"]["actors"]["ana"], resumed["rerun"]["actors"]["ben"]
    job = ActorJob(Path(ana["video"]), Path(ana["bundle"]), device="cpu", options=TINY)
    config = job.config(torch.device("cpu"))
    assert unfinished_stages(job.video, job.bundle, config) == []
    # A changed setting: its stage and those after it; another video: all.
    changed = dataclasses.replace(job, options={**TINY, "audio2pose_steps": 5}).config(torch.device("cpu"))
    assert unfinished_stages(job.video, job.bundle, changed) == ["audio2pose", "voice", "refine", "articulation"]
    assert unfinished_stages(Path(ben["video"]), job.bundle, config) == list(STAGES)


def test_second_run_skips_every_finished_actor(resumed, ray_here, tmp_path):
    """The same manifest as CSV: same settings, so nothing reruns."""
    csv = tmp_path / "actors.csv"
    rows = [
        f"{name},{resumed['rerun']['actors'][name]['video']}," + ",".join(map(str, TINY.values())) for name in CLIPS
    ]
    csv.write_text("\n".join(["name,video," + ",".join(TINY), *rows]) + "\n")
    before = {name: stage_records(resumed["root"] / name) for name in CLIPS}
    summary = run_jobs(csv, resumed["root"], JobsConfig(device="cpu"), progress=False)
    assert summary["counts"] == {"done": 0, "skipped": 3, "failed": 0, "pending": 0}
    for name, actor in summary["actors"].items():
        assert actor["attempts"] == 0 and actor["ran"] == [] and len(actor["stages"]) == len(STAGES)
        assert stage_records(resumed["root"] / name) == before[name]


def test_a_corrupt_video_fails_only_its_actor_and_the_run_exits_non_zero(resumed, ray_here, tmp_path, capsys):
    """Besides: a bundle path taken by a file is an input error too (since issue 23), and so is the
    bundle of another video: none is retried."""
    root = tmp_path / "root"
    shutil.copytree(resumed["root"] / "ana", root / "ana")
    shutil.copytree(resumed["root"] / "ana", root / "changed")
    corrupt = tmp_path / "corrupt.mp4"
    # Seeded: now and then, unseeded random bytes open as a container without a video stream.
    corrupt.write_bytes(np.random.default_rng(0).bytes(50_000))
    (root / "blocked").write_text("not an actor bundle")
    manifest = write_yaml(
        tmp_path / "actors.yaml",
        {
            "ana": Path(resumed["rerun"]["actors"]["ana"]["video"]),
            "bad": corrupt,
            "blocked": Path(resumed["rerun"]["actors"]["ben"]["video"]),
            "changed": Path(resumed["rerun"]["actors"]["cai"]["video"]),
        },
    )
    assert main(["-q", "jobs", "run", str(manifest), "--root", str(root), "--device", "cpu"]) == 2
    assert "3 of 4 actors failed (bad, blocked, changed)" in assert_one_error_line(capsys)
    actors = json.loads((root / SUMMARY_NAME).read_text())["actors"]
    assert actors["ana"]["status"] == "skipped" and actors["ana"]["error"] is None
    assert actors["bad"]["status"] == "failed" and actors["bad"]["attempts"] == 1
    assert actors["bad"]["error"].startswith(f"{corrupt}: not a readable video")
    assert actors["blocked"]["status"] == "failed" and actors["blocked"]["attempts"] == 1
    assert "a file, not a directory" in actors["blocked"]["error"] and "\n" not in actors["blocked"]["error"]
    assert not (root / "bad" / "manifest.json").exists()
    # `jobs run` has no --overwrite to suggest; ana's bundle is left as it was.
    assert actors["changed"]["status"] == "failed" and actors["changed"]["attempts"] == 1
    assert actors["changed"]["error"] == (
        f"{root / 'changed'}: already the actor bundle of another video ({CLIPS['ana']}); give the actor another "
        f"name in the manifest, or remove {root / 'changed'} to make it anew"
    )
    assert stage_records(root / "changed") == stage_records(root / "ana")


@pytest.mark.parametrize("case", ["unknown_option", "duplicate_name", "no_video", "missing_video"])
def test_manifest_errors_exit_2_with_one_line_before_any_job(clips, tmp_path, capsys, case):
    video, root = str(clips / CLIPS["ana"]), tmp_path / "root"
    actors, message = {
        "unknown_option": ([{"name": "ana", "video": video, "landmark_stepz": 5}], "unknown option 'landmark_stepz'"),
        "duplicate_name": ([{"name": "ana", "video": video}, {"name": "ana", "video": video}], "'ana' appears twice"),
        "no_video": ([{"name": "ana"}], "no video"),
        "missing_video": ([{"name": "ana", "video": "nowhere.mp4"}], "nowhere.mp4: no such video"),
    }[case]
    manifest = tmp_path / "actors.yaml"
    manifest.write_text(yaml.safe_dump({"actors": actors}))
    assert main(["jobs", "run", str(manifest), "--root", str(root)]) == 2
    assert message in assert_one_error_line(capsys)
    assert not root.exists()


def test_more_cpus_per_job_than_a_node_has_is_refused(ray_here, clips, tmp_path):
    manifest = write_yaml(tmp_path / "actors.yaml", {"ana": clips / CLIPS["ana"]})
    with pytest.raises(InputError, match="--cpus-per-job 1000: give 1 to"):
        run_jobs(manifest, tmp_path / "root", JobsConfig(cpus_per_job=1000), progress=False)
    assert not (tmp_path / "root").exists()  # refused once connected to the cluster: no lock, no root left


def test_a_folder_given_as_a_video_is_refused_as_a_folder(tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    manifest, root = tmp_path / "actors.yaml", tmp_path / "root"
    manifest.write_text(yaml.safe_dump({"actors": [{"name": "ana", "video": "clips"}]}))
    assert main(["jobs", "run", str(manifest), "--root", str(root)]) == 2
    assert assert_one_error_line(capsys) == (
        f"talkface: error: {manifest}: actor ana: {tmp_path / 'clips'} is a folder, not a video; "
        "give the path of a video file"
    )
    assert not root.exists()


@pytest.mark.parametrize("exists", [False, True])
def test_a_refused_cpus_per_job_leaves_nothing_in_the_root(tmp_path, capsys, exists):
    (tmp_path / "a.mp4").write_bytes(b"")  # refused before the video is read
    manifest, root = tmp_path / "actors.yaml", tmp_path / "out" / "root"
    manifest.write_text(yaml.safe_dump({"actors": [{"name": "ana", "video": "a.mp4"}]}))
    if exists:
        root.mkdir(parents=True)
    assert main(["jobs", "run", str(manifest), "--root", str(root), "--cpus-per-job", "0"]) == 2
    line = assert_one_error_line(capsys)
    if exists:
        assert list(root.iterdir()) == []
    else:
        assert not (tmp_path / "out").exists()
    assert line == "talkface: error: --cpus-per-job 0: give 1 or more, the CPUs each job reserves"


def test_the_root_lock_goes_with_the_run_and_a_refused_run_leaves_no_root(tmp_path):
    root = tmp_path / "new" / "root"
    with pytest.raises(InputError, match="refused once connected"):
        with root_lock(root):
            assert (root / LOCK_NAME).is_file()
            # A second run on the same root meanwhile is refused, and leaves the first one's lock.
            with pytest.raises(InputError, match="another `talkface jobs run` is using this root"):
                with root_lock(root):
                    pass
            assert (root / LOCK_NAME).is_file()
            raise InputError("refused once connected")
    assert not (tmp_path / "new").exists()
    with root_lock(root):
        (root / SUMMARY_NAME).write_text("{}")
    assert [path.name for path in root.iterdir()] == [SUMMARY_NAME]
