"""`talkface evaluate`: the metrics on known arrays, `personalize --end`, an evaluation of a real
actor on the unseen tail of its clip, bad inputs, batches, and the report opened in a browser."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from audio2pose.metrics import (
    landmark_aperture,
    mouth_landmark_distance,
    pose_baselines,
    velocity_w1,
)
from personalize.bundle import MANIFEST_NAME, Actor, ActorBundle
from personalize.cli import main
from personalize.evaluate import (
    GENERATED_NAME,
    METRICS_NAME,
    SAME_PERSON,
    EvaluateConfig,
    evaluate,
    evaluate_batch,
    metric_keys,
    metrics_schema,
    read_report,
    trained_frames_found,
)
from personalize.manifest import ActorEntry
from personalize.pipeline import PersonalizeConfig, personalize
from personalize.report import PLOTS, REPORT_NAME, write_summary
from recon3d.errors import InputError
from recon3d.fit import FitConfig
from recon3d.video import AUDIO_RATE, probe, read_audio, read_frames, trim_video, write_video
from tests.conftest import encode_video
from tests.personalize.conftest import ACTOR_CLIP, tiny_config
from tests.personalize.test_pipeline import speech_like

METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
END = 3.0
"""Seconds of ACTOR_CLIP (4.2 s) the evaluated actor learns from; the last 1.2 s are held out."""
TINY_EVALUATE = EvaluateConfig(fit=FitConfig(landmark_steps=150, photometric_steps=2, render_size=64))


# ------------------------------------------------------------------------------------ metrics


def face_points(rng: np.random.Generator) -> np.ndarray:
    """(68, 2) landmarks: random, with the outer eye corners at (0, 0) and (1, 0)."""
    points = rng.normal(size=(68, 2))
    points[36], points[45] = (0, 0), (1, 0)
    return points


def test_velocity_w1_compares_the_speed_of_motion_not_the_pose():
    t = np.arange(50, dtype=np.float64)
    real = np.stack([t * 0.4, np.zeros(50), np.sin(t)], 1)  # pitch at 0.4 deg per frame = 10 deg/s
    moved = real + [30.0, 5.0, 0.0]  # another pose, the same motion
    still = np.zeros((50, 3))
    assert velocity_w1(real, moved, 25) == pytest.approx({f"velocity_w1_{a}": 0.0 for a in ("pitch", "yaw", "roll")})
    assert velocity_w1(real, still, 25)["velocity_w1_pitch"] == pytest.approx(10.0)
    assert np.isnan(velocity_w1(real, still[:1], 25)["velocity_w1_yaw"])  # one frame: no motion to compare


def test_pose_baselines_are_a_still_head_and_the_training_replayed():
    real = np.full((10, 3), 2.0)
    train = np.repeat([[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]], 5, axis=0)  # mean 2: the still head is exact
    scores = pose_baselines(real, train, fps=25)
    assert scores["static_w1_yaw"] == pytest.approx(0) and scores["static_hs"] == pytest.approx(1)
    assert scores["replay_w1_roll"] == pytest.approx(2) and scores["replay_hs"] == pytest.approx(0.8)
    assert scores["static_velocity_w1_pitch"] == pytest.approx(0)
    assert scores["replay_velocity_w1_pitch"] == pytest.approx(4 * 25 / 9)  # one jump of 4 deg in 9 changes


def test_mouth_metrics_on_known_landmarks():
    rng = np.random.default_rng(0)
    real = face_points(rng)[None].repeat(3, 0)
    # The same mouth on a head that moved, turned in the image plane and came closer: LMD 0.
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = real @ rotation.T * 1.7 + [40.0, -12.0]
    assert mouth_landmark_distance(real, moved) == pytest.approx(0, abs=1e-9)
    # One mouth point 0.1 eye distances away: centring spreads 1/20 of it over all 20 points.
    opened = real.copy()
    opened[:, 57, 1] += 0.1
    assert mouth_landmark_distance(real, opened) == pytest.approx(0.1 * (19 / 20 + 19 * (1 / 20)) / 20)
    # Inner-lip pairs 0.3 apart, eye corners 1 apart.
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        opened[:, lower] = opened[:, upper] + [0.0, 0.3]
    assert landmark_aperture(opened) == pytest.approx([0.3] * 3)
    assert landmark_aperture(opened * 2) == pytest.approx([0.3] * 3)  # in eye-corner units


def test_every_metric_is_in_the_schema_and_documented():
    keys = metric_keys()
    assert len(keys) == len(set(keys)) and {"hs", "static_hs", "replay_hs", "mouth_r", "lmd", "psnr_refined"} <= set(
        keys
    )
    jsonschema.Draft202012Validator.check_schema(metrics_schema())
    documented = METRICS_DOC.read_text()
    assert [key for key in keys if f"`{key}`" not in documented] == []


def test_summary_takes_mean_min_max_per_metric_and_keeps_errors(tmp_path):
    rows = [
        {"name": "a", "report": "a/report.html", "seconds": 10.0, "metrics": {"hs": 0.5, "mouth_r": None, "lmd": 0.1}},
        {"name": "b", "report": "b/report.html", "seconds": 20.0, "metrics": {"hs": 0.8, "mouth_r": 0.2, "lmd": 0.3}},
        {"name": "c", "report": "c/report.html", "error": "c.mp4: no face found; give a video where ..."},
    ]
    summary = write_summary(tmp_path, rows)
    assert summary["aggregate"]["hs"] == {"mean": pytest.approx(0.65), "min": 0.5, "max": 0.8, "n": 2}
    assert summary["aggregate"]["mouth_r"] == {"mean": 0.2, "min": 0.2, "max": 0.2, "n": 1}
    assert summary["failed"] == ["c"]
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    markdown = (tmp_path / "summary.md").read_text()
    assert "| c | failed: c.mp4: no face found" in markdown and "| **mean** | 0.650 |" in markdown
    page = (tmp_path / "summary.html").read_text()
    assert '<a href="a/report.html">a</a>' in page and "failed: c.mp4: no face found" in page


# ------------------------------------------------------------------------------------ a real actor


@pytest.fixture(scope="module")
def source(clips: Path, tmp_path_factory) -> Path:
    """A private copy of the clip, whose path the actor bundle records."""
    path = tmp_path_factory.mktemp("source") / ACTOR_CLIP
    shutil.copyfile(clips / ACTOR_CLIP, path)
    return path


@pytest.fixture(scope="module")
def heldout_actor(source: Path, flite: str, tmp_path_factory) -> Path:
    """An actor that learned from the first END seconds of its clip only."""
    root = tmp_path_factory.mktemp("heldout_actor") / "actor"
    personalize(source, root, dataclasses.replace(tiny_config(), end=END), progress=False)
    return root


class Warnings(logging.Handler):
    """The talkface logger's warnings while it is installed (`with Warnings() as warned:`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> list[str]:
        logging.getLogger("talkface").addHandler(self)
        return self.messages

    def __exit__(self, *exc) -> None:
        logging.getLogger("talkface").removeHandler(self)


@pytest.fixture(scope="module")
def report_warnings() -> list[str]:
    """What `report`'s evaluation warned."""
    return []


@pytest.fixture(scope="module")
def report(heldout_actor: Path, report_warnings: list[str], tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("evaluation") / "report"
    with Warnings() as warned:
        record = evaluate(heldout_actor, out, config=TINY_EVALUATE, progress=False)
    report_warnings.extend(warned)
    return out, record


def test_personalize_end_learns_from_the_head_of_the_video_only(heldout_actor, source):
    manifest = json.loads((heldout_actor / MANIFEST_NAME).read_text())
    assert manifest["settings"]["end"] == END
    assert manifest["source"]["name"] == ACTOR_CLIP and manifest["source"]["path"] == str(source.resolve())
    for stage in ("ingest", "track"):
        assert manifest["stages"][stage]["metrics"]["frames"] == END * 25
    assert manifest["stages"]["ingest"]["metrics"]["width"] == 224


@pytest.mark.parametrize(
    "end, message", [(9.0, r"past the end of .*\(4\.2\d s\)"), (1.5, "leaves 1.5 s .* at least 2 s")]
)
def test_an_end_outside_the_video_fails_before_anything_is_written(source, tmp_path, end, message):
    with pytest.raises(InputError, match=message):
        personalize(source, tmp_path / "actor", PersonalizeConfig(face_model="builtin", end=end), progress=False)
    assert not (tmp_path / "actor").exists()


def test_evaluate_writes_a_complete_report_of_the_unseen_tail(report, heldout_actor, source):
    out, record = report
    assert sorted(p.name for p in out.iterdir()) == sorted([METRICS_NAME, REPORT_NAME, GENERATED_NAME, *PLOTS])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert json.loads((out / METRICS_NAME).read_text()) == record == read_report(out)
    jsonschema.validate(record, metrics_schema())
    held = record["heldout"]
    assert held["start"] == END and held["video"] == str(source.resolve()) and held["text"] is None
    assert abs(held["frames"] - (4.2 - END) * 25) <= 1
    generated = record["generated"]
    assert generated["frames"] == held["frames"] and generated["face_detected"] > 0.9
    assert generated["synthesis"] == "image" and not generated["refined"]
    video = probe(out / GENERATED_NAME)
    assert (video.width, video.height) == (224, 224) and video.has_audio
    metrics = record["metrics"]
    unmeasured = [key for key, value in metrics.items() if value is None]
    # No --text; a blink's length only where there is a blink (this actor's downcast eyes show none).
    no_blinks = [f"{p}blink_ms" for p in ("", "real_") if metrics[f"{p}blink_rate"] == 0]
    assert sorted(unmeasured) == sorted([*no_blinks, "speaker_similarity", "speaker_similarity_unmatched"])
    for prefix in ("", "real_"):
        assert metrics[f"{prefix}blink_rate"] >= 0 and metrics[f"{prefix}half_closed_ms"] >= 0
    for key in ("hs", "static_hs", "replay_hs"):
        assert 0 <= metrics[key] <= 1
    assert -1 <= metrics["mouth_r"] <= 1 and 0 < metrics["lmd"] < 0.5
    assert 15 < metrics["psnr_raw"] < 50 and 0 < metrics["ssim_raw"] <= 1 and metrics["sharpness_real"] > 0
    # The synthesis moves the actor's own pixels: about as sharp as the real frames, far more than the render,
    # and dlib finds the same person in it; its face outline no more visible than the real one's.
    assert metrics["sharpness_synthesized"] > 0.7 * metrics["sharpness_real"] > metrics["sharpness_raw"]
    assert metrics["identity_synthesized"] > metrics["identity_real"] - 0.03 and metrics["psnr_synthesized"] > 15
    assert metrics["seam_synthesized"] < 1.3 * metrics["seam_real"] and metrics["sharpness_generated"] > 0
    # The real held-out frames are the actor: dlib tells the same person apart from others at ~0.9.
    assert metrics["identity_real"] > 0.9
    assert set(record["timings"]) == {"held-out", "track", "reconstruct", "generate", "re-track", "metrics", "report"}
    page = (out / REPORT_NAME).read_text()
    assert all(f'src="{name}"' in page for name in PLOTS) and "http" not in page and "<script" not in page
    assert f"{metrics['hs']:.3f}" in page


def test_the_report_opens_in_a_real_browser_with_every_image(report, tmp_path):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e .[test])"
    )
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "Chromium is not installed (scripts/setup.sh installs it with apt-get as root; or apt install chromium)"
        )
    out, _ = report
    shot = tmp_path / "report.png"
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((out / REPORT_NAME).as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"
            )
            assert sorted(src for src, _, _ in images) == sorted(PLOTS)
            assert all(complete and width > 0 for _, complete, width in images), images
            assert page.title().startswith("talkface evaluation")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    import cv2

    image = cv2.imread(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[1] == 1280 and image.shape[0] > 900
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 1000  # text, plots and frames


def test_text_is_said_in_the_actors_voice_and_its_speaker_similarity_measured(heldout_actor, tmp_path):
    record = evaluate(heldout_actor, tmp_path / "report", text="Hello there.", config=TINY_EVALUATE, progress=False)
    metrics = record["metrics"]
    assert record["heldout"]["text"] == "Hello there." and record["heldout"]["start"] == END
    # Other words than the real frames': no lip sync to measure; head pose still compares.
    assert [metrics[key] for key in ("mouth_r", "replay_mouth_r", "lmd", "replay_lmd")] == [None] * 4
    assert 0 <= metrics["hs"] <= 1
    # GE2E: different voices score about 0.6, the same voice about 0.94.
    assert 0.3 < metrics["speaker_similarity"] < 1 and 0.2 < metrics["speaker_similarity_unmatched"] < 1
    assert "Hello there." in (tmp_path / "report" / REPORT_NAME).read_text()


def test_the_cli_evaluates_and_refuses_frames_that_were_trained_on(heldout_actor, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["-q", "evaluate", "--actor", str(heldout_actor), "--start", "2.5", "--report", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"talkface: error: --start 2.5: the actor was trained on .* up to 3 s", error)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_face", "no face found"),
        ("no_audio", "no audio stream"),
        ("both", "as --video or as --start, not both"),
        ("past_the_end", r"0\.\d\d s held out from 4.2 s on; give at least 1 s"),
        ("missing_actor", "no such actor bundle"),
        ("empty_text", "--text is empty"),
    ],
)
def test_bad_inputs_fail_in_one_line_and_write_nothing(heldout_actor, tmp_path, case, message):
    actor, video, start, text = heldout_actor, None, None, None
    grey = np.full((40, 96, 96, 3), 128, np.uint8)
    if case == "no_face":
        video = encode_video(tmp_path / "wall.mp4", grey, audio=speech_like(1.6))
    elif case == "no_audio":
        video = encode_video(tmp_path / "mute.mp4", grey)
    elif case == "both":
        video, start = tmp_path / "wall.mp4", END
    elif case == "past_the_end":
        start = 4.2
    elif case == "missing_actor":
        actor = tmp_path / "nobody"
    elif case == "empty_text":
        text = "  "
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InputError, match=message):
        evaluate(actor, tmp_path / "report", video, start, text, TINY_EVALUATE, progress=False)
    assert sorted(tmp_path.iterdir()) == before


def test_an_actor_that_learned_from_all_of_its_video_needs_a_heldout_video(actor_dir, tmp_path):
    with pytest.raises(InputError, match="none of it is unseen; give --video"):
        evaluate(actor_dir, tmp_path / "report", config=TINY_EVALUATE, progress=False)


def test_a_changed_source_video_is_not_used(heldout_actor, source, tmp_path):
    root = tmp_path / "actor"
    shutil.copytree(heldout_actor, root)
    bundle = ActorBundle.open(root)  # written through the bundle: a hand-edited manifest is refused
    bundle.manifest["source"]["path"] = str(tmp_path / "elsewhere.mp4")
    bundle.write_manifest()
    with pytest.raises(InputError, match="source video .*elsewhere.mp4 is not there any more; give --video"):
        evaluate(root, tmp_path / "report", config=TINY_EVALUATE, progress=False)
    shutil.copyfile(source, tmp_path / "elsewhere.mp4")
    with open(tmp_path / "elsewhere.mp4", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 100)
    with pytest.raises(InputError, match="elsewhere.mp4: changed since the actor was made from it"):
        evaluate(root, tmp_path / "report", config=TINY_EVALUATE, progress=False)


def test_a_batch_keeps_finished_reports_and_records_a_failing_actor(report, heldout_actor, source, tmp_path, capsys):
    out, record = report
    actors, reports = tmp_path / "actors", tmp_path / "reports"
    actors.mkdir()
    (actors / "done").symlink_to(heldout_actor, target_is_directory=True)
    shutil.copytree(out, reports / "done")
    finished = (reports / "done" / METRICS_NAME).stat().st_mtime_ns
    entries = [ActorEntry("done", source, {"end": END}), ActorEntry("missing", source, {"end": END})]
    summary = evaluate_batch(entries, actors, reports, config=TINY_EVALUATE, progress=False)
    assert (reports / "done" / METRICS_NAME).stat().st_mtime_ns == finished  # not evaluated again
    assert summary["failed"] == ["missing"] and "no such actor bundle" in summary["actors"][1]["error"]
    assert summary["actors"][0]["metrics"] == record["metrics"]
    assert summary["aggregate"]["hs"] == {
        "mean": record["metrics"]["hs"],
        "min": record["metrics"]["hs"],
        "max": record["metrics"]["hs"],
        "n": 1,
    }
    assert not (reports / "missing").exists()
    # The same through the CLI, from a manifest: finished, so only the failure is redone; exit 2.
    manifest = tmp_path / "actors.csv"
    manifest.write_text(f"name,video,end\ndone,{source},{END}\nmissing,{source},{END}\n")
    code = main(["-q", "evaluate", "--batch", str(manifest), "--actors", str(actors), "--report", str(reports)])
    assert code == 2 and "1 of 2 actors failed (missing)" in capsys.readouterr().err
    assert "| missing | failed: " in (reports / "summary.md").read_text()


# ------------------------------------------------------------------------------------ not held out


def cut(video: Path, out: Path, first: int, stop: int, before: Path | None = None) -> Path:
    """Frames [first, stop) of `video` with their audio, re-encoded lossily (x264 crf 23); after
    the first 10 frames of `before` when given (with silence under them)."""
    frames = read_frames(video)[first:stop]
    audio = read_audio(video)[first * 640 : stop * 640]
    if before is not None:
        frames = np.concatenate([read_frames(before)[:10], frames])
        audio = np.concatenate([np.zeros(10 * 640, np.float32), audio])
    write_video(out, frames, audio=audio, sample_rate=AUDIO_RATE, crf=23)
    return out


@pytest.mark.parametrize(
    "case, message",
    [
        ("itself", "the video the actor was trained on"),
        ("copy", "the video the actor was trained on"),
        ("changed since", "the video the actor was trained on"),
        ("re-encoded cut", r"frames from 0\.00 s on are frames the actor was trained on \(vox_00010.mp4 from 1\.00 s"),
        ("cut after other footage", r"0\.40 s on are frames the actor was trained on \(vox_00010.mp4 from 0\.00 s"),
    ],
)
def test_the_training_video_is_not_taken_for_heldout_footage(
    heldout_actor, source, clips, tmp_path, capsys, case, message
):
    actor = heldout_actor
    if case == "itself":
        video = source
    elif case == "copy":
        video = tmp_path / "copy.mp4"
        shutil.copyfile(source, video)
    elif case == "changed since":
        # The file the bundle recorded, changed (other bytes): still the file it was trained on.
        actor, video = tmp_path / "actor", tmp_path / "source.mp4"
        shutil.copytree(heldout_actor, actor)
        shutil.copyfile(source, video)
        bundle = ActorBundle.open(actor)
        bundle.manifest["source"]["path"] = str(video)
        bundle.write_manifest()
        with open(video, "ab") as f:
            f.write(b"\0" * 100)
    elif case == "re-encoded cut":
        video = cut(source, tmp_path / "cut.mp4", 25, 75)  # 1 s to 3 s: trained on
    else:
        video = cut(source, tmp_path / "cut.mp4", 0, 40, before=clips / "vox_00002.mp4")
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InputError, match=message) as refusal:
        evaluate(actor, tmp_path / "report", video, config=TINY_EVALUATE, progress=False)
    assert str(refusal.value).endswith(
        "so not held out; give --video with footage of the actor that it was not trained on, "
        f"or --start {END:g} for its video's unseen tail"
    )
    assert sorted(tmp_path.iterdir()) == before  # refused before any work: no report, no staging folder
    code = main(["-q", "evaluate", "--actor", str(actor), "--video", str(video), "--report", str(tmp_path / "report")])
    assert code == 2 and capsys.readouterr().err.strip() == f"talkface: error: {refusal.value}"
    assert sorted(tmp_path.iterdir()) == before


def test_unseen_footage_is_not_taken_for_trained_frames(heldout_actor, source, clips, tmp_path):
    actor = Actor.load(heldout_actor)
    # The tail right after the trained part (its first frame follows the last trained one), and
    # another person: no frames in common.
    trim_video(source, tmp_path / "tail.mp4", first=round(END * 25))
    assert trained_frames_found(actor, tmp_path / "tail.mp4") is None
    assert trained_frames_found(actor, clips / "vox_00002.mp4") is None
    assert trained_frames_found(actor, cut(source, tmp_path / "cut.mp4", 25, 75)) == (25, 0)


def test_heldout_footage_of_someone_else_is_measured_with_a_warning(heldout_actor, clips, tmp_path, report_warnings):
    other = tmp_path / "other.mp4"
    trim_video(clips / "vox_00002.mp4", other, stop=30)  # a woman; the actor is a man
    with Warnings() as warned:
        record = evaluate(heldout_actor, tmp_path / "report", other, config=TINY_EVALUATE, progress=False)
    assert read_report(tmp_path / "report") == record  # measured all the same
    assert len(warned) == 1 and re.fullmatch(
        rf"{re.escape(str(other))}: the face in it does not look like the actor's \(identity similarity 0\.\d+; the "
        rf"same person scores above {SAME_PERSON}\), so the metrics compare the actor with someone else: give "
        rf"held-out footage of the person in {ACTOR_CLIP}",
        warned[0],
    )
    assert float(re.search(r"similarity (0\.\d+)", warned[0]).group(1)) < SAME_PERSON
    # The actor's own unseen footage: no warning.
    assert not [message for message in report_warnings if "does not look like" in message]
