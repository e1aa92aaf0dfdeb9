import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import trimesh
from scipy.io import wavfile

from audio2pose.blinks import eye_openness, find_blinks, runs
from audio2pose.features import load_speech
from audio2pose.general import general_model_path
from personalize.bundle import Actor
from personalize.cli import build_parser, main
from personalize.generate import GenerateConfig, plan_speech
from personalize.samples import sample_photo, sample_speech
from recon3d.errors import InputError
from recon3d.facemodels import load_face_model
from recon3d.landmarks import mesh_to_ibug68
from recon3d.reconstruct import Reconstruction
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import probe, read_audio, read_frames
from tests.conftest import encode_video, numbered_frames
from tests.personalize.conftest import ACTOR_CLIP


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_help_lists_only_working_commands():
    commands = _subcommands(build_parser())
    assert sorted(commands) == [
        "evaluate",
        "generate",
        "jobs",
        "personalize",
        "pretrain",
        "reconstruct",
        "speak",
        "track",
    ]
    assert sorted(_subcommands(commands["pretrain"])) == ["audio2pose", "recon", "refine"]
    assert sorted(_subcommands(commands["jobs"])) == ["run"]


def test_version_is_answered_before_the_commands_are_imported():
    # torch, mediapipe and the rest take seconds to import; --version needs none of them.
    code = (
        "import sys\nfrom personalize.cli import main\n"
        "try:\n    main(['-q', '--version'])\nexcept SystemExit as stop:\n    assert stop.code == 0\n"
        "heavy = {'torch', 'mediapipe', 'cv2', 'personalize.commands'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("talkface ") and len(done.stdout.split()) == 2


def test_every_option_states_its_default_once():
    parsers = dict(_subcommands(build_parser()))
    for group in ("pretrain", "jobs"):
        parsers |= {f"{group} {name}": sub for name, sub in _subcommands(parsers.pop(group)).items()}
    for name, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help and action.option_strings and action.dest != "help":
                text = formatter._expand_help(action)
                assert text.count("default:") == 1, f"{name} {action.option_strings[-1]}: {text}"


def test_openmp_threads_wait_by_sleeping_unless_told_otherwise():
    # Spinning waits thrash when jobs share cores (scripts/bench_contention.py); the variable only
    # acts if set before torch loads OpenMP, so it is checked in a fresh interpreter.
    code = "import personalize, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = lambda env: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)  # noqa: E731
    assert run(env).stdout.strip() == "PASSIVE"
    assert run({**env, "OMP_WAIT_POLICY": "ACTIVE"}).stdout.strip() == "ACTIVE"


def assert_one_error_line(capsys) -> str:
    """The run printed exactly one error line, last, in the toolkit's format; returns it."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("talkface: error: ") and err[-1] == errors[0]
    return errors[0]


@pytest.mark.slow
def test_console_script_runs():
    exe = Path(sys.executable).with_name("talkface")
    if not exe.exists():
        pytest.skip(f"no talkface console script beside {sys.executable} (package not installed there)")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and all(name in result.stdout for name in ("track", "reconstruct", "pretrain"))


def test_track_default_photo(tmp_path, capsys):
    assert main(["track", "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["crop.png", "preview.png", "track.npz"]
    track = FaceTrack.load(tmp_path / "out" / "track.npz")
    assert track.num_frames == 1 and track.detected.all() and track.confidence[0] > 0.5
    assert probe(tmp_path / "out" / "crop.png").width == 256


def test_track_video_writes_crop_and_preview(clips, tmp_path):
    out = tmp_path / "out"
    assert main(["-q", "track", str(clips / "vox_00010.mp4"), "-o", str(out), "--crop-size", "128"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["crop.mp4", "preview.mp4", "track.npz"]
    crop, preview = probe(out / "crop.mp4"), probe(out / "preview.mp4")
    assert (crop.width, crop.height) == (128, 128) and crop.has_audio
    assert (preview.width, preview.height) == (224, 224)
    n = FaceTrack.load(out / "track.npz").num_frames
    assert crop.num_frames() == preview.num_frames() == n == 106


@pytest.mark.parametrize("case", ["missing", "text", "blank"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    source = {
        "missing": tmp_path / "nope.mp4",
        "text": tmp_path / "notes.mp4",
        "blank": tmp_path / "blank.mp4",
    }[case]
    if case == "text":
        source.write_text("not a video")
    if case == "blank":
        encode_video(source, np.zeros((10, 64, 64, 3), np.uint8))
    out = tmp_path / "out"
    assert main(["track", str(source), "-o", str(out)]) == 2
    assert_one_error_line(capsys)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_module_entry_point_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "personalize.cli", "track", str(tmp_path / "nope.mp4")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"talkface: error: {tmp_path / 'nope.mp4'}: no such file; check the path"


TINY_RECONSTRUCT = [
    "--face-model",
    "builtin",
    "--landmark-steps",
    "50",
    "--photometric-steps",
    "2",
    "--render-size",
    "32",
    "--crop-size",
    "128",
    "--device",
    "cpu",
]


def test_reconstruct_default_photo(tmp_path):
    out = tmp_path / "out"
    assert main(["-q", "reconstruct", "-o", str(out), *TINY_RECONSTRUCT]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["coeffs.npz", "face.glb", "face.ply", "overlay.png"]
    recon = Reconstruction.load(out / "coeffs.npz")
    # The fitted face as a mesh a viewer opens: the model's vertices, in its order, with the albedo.
    model = load_face_model("builtin")
    for name in ("face.ply", "face.glb"):
        mesh = trimesh.load(out / name, force="mesh", process=False)
        assert mesh.vertices.shape == (model.num_vertices, 3) and len(mesh.faces) == model.num_faces
        colours = mesh.visual.vertex_colors[:, :3] / 255.0
        np.testing.assert_allclose(colours, recon.albedo, atol=1 / 255 + 1e-6)
    assert recon.num_frames == 1 and recon.face_model == "mediapipe-builtin" and recon.crop.size == 128
    assert recon.landmark_error[0] < 0.1  # 50 landmark steps: ~0.05 of the eye distance
    photo = probe(out / "overlay.png")
    assert (photo.width, photo.height) == (2 * recon.crop.frame_width, recon.crop.frame_height)  # two panels


@pytest.mark.parametrize("case", ["face_model", "device", "corpus", "audio2pose_corpus"])
def test_reconstruct_and_pretrain_input_errors_exit_2_with_one_line(tmp_path, capsys, case):
    if case == "device" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here")
    out = tmp_path / "out"
    argv, message = {
        "face_model": (
            ["reconstruct", "--face-model", str(tmp_path / "nope.npz"), "--device", "cpu"],
            f"face model not found at {tmp_path / 'nope.npz'}",
        ),
        "device": (["reconstruct", "--face-model", "builtin", "--device", "cuda"], "--device cuda: no CUDA GPU"),
        "corpus": (
            ["pretrain", "recon", "--corpus", str(tmp_path / "missing_dir"), "--face-model", "builtin"],
            "corpus folder not found",
        ),
        "audio2pose_corpus": (
            ["pretrain", "audio2pose", "--corpus", str(tmp_path), "--face-model", "builtin"],
            "no videos (.mp4",
        ),
    }[case]
    assert main([*argv, "-o", str(out)]) == 2
    assert message in assert_one_error_line(capsys)
    assert not out.exists()


@pytest.mark.e2e
def test_personalize_then_generate_the_default_photo_and_speech(tmp_path, flite):
    """The README's main command, with a quick fit."""
    if not general_model_path("mediapipe-builtin").is_file():
        pytest.skip(
            "no general audio2pose model for the built-in face model (scripts/setup.sh trains it when it "
            "finds ../shared/data/clips)"
        )
    actor, video = tmp_path / "actor", tmp_path / "talk.mp4"
    assert (
        main(
            [
                "-q",
                "personalize",
                "--actor",
                str(actor),
                "--face-model",
                "builtin",
                "--landmark-steps",
                "50",
                "--photometric-steps",
                "2",
                "--crop-size",
                "128",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert main(["-q", "generate", "--actor", str(actor), "-o", str(video), "--device", "cpu"]) == 0
    info = probe(video)
    assert (info.width, info.height) == (512, 512) and info.has_audio and 3.5 < info.duration < 4.5
    manifest = json.loads((actor / "manifest.json").read_text())
    assert manifest["settings"]["photo"] and manifest["stages"]["audio2pose"]["metrics"]["model"] == "general"
    # One frame cannot teach the GAN how the face moves: a photo actor is not refined.
    assert manifest["stages"]["refine"]["metrics"] == {"refined": False} and not (actor / "refine.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actor", "talk.mp4"]
    # The photo's own pixels, moved: the face far sharper than the face model's render (resampling
    # through the warp and the video codec keep about 2/3 of a PNG's Laplacian variance), the mouth moving.
    rendered = tmp_path / "rendered.mp4"
    assert main(["-q", "generate", "--actor", str(actor), "-o", str(rendered), "--synthesis", "render"]) == 0
    box = np.s_[90:110, 195:255]  # the astronaut's brows and forehead (skin, no painted mouth edges)
    grey = lambda image: cv2.cvtColor(np.ascontiguousarray(image[box]), cv2.COLOR_RGB2GRAY)  # noqa: E731
    sharpness = lambda frames: np.mean([cv2.Laplacian(grey(f), cv2.CV_64F).var() for f in frames[::10]])  # noqa: E731
    frames, photo = read_frames(video), read_frames(sample_photo())
    assert sharpness(frames) > 0.5 * sharpness(photo) and sharpness(frames) > 1.5 * sharpness(read_frames(rendered))
    assert np.abs(np.diff(frames[:, 150:200, 200:290].astype(np.float32), axis=0)).mean() > 0.3
    rendered.unlink()
    # The photo blinks (its lids drawn shut, as the tracker sees them) where the plan shuts them.
    audio, num_frames = load_speech(sample_speech(), None)
    planned = runs(plan_speech(Actor.load(actor), audio, num_frames, GenerateConfig())[0].closure > 0.5)
    seen = find_blinks(eye_openness(mesh_to_ibug68(track_video(video, TrackConfig(), progress=False).mesh_raw)))
    assert len(planned) >= 1 and len(seen) == len(planned)
    assert all(abs(start - s) <= 2 for (start, _), (s, _) in zip(planned, seen))


@pytest.mark.parametrize("case", ["no_actor", pytest.param("silent_audio", marks=pytest.mark.e2e)])
def test_generate_input_errors_exit_2_with_one_line_and_no_output(tmp_path, capsys, case, request):
    out = tmp_path / "talk.mp4"
    if case == "no_actor":
        argv, message = ["--actor", str(tmp_path / "nobody")], "no such actor bundle"
    else:
        silence = tmp_path / "silence.wav"
        wavfile.write(silence, 16000, np.zeros(16000, np.float32))
        argv, message = ["--actor", str(request.getfixturevalue("actor_dir")), "--audio", str(silence)], "silent"
    assert main(["generate", *argv, "-o", str(out)]) == 2
    assert message in assert_one_error_line(capsys)
    assert not out.exists()


def test_speak_and_generate_say_text_in_the_actors_voice(actor_dir, tmp_path):
    speech, video = tmp_path / "speech.wav", tmp_path / "talk.mp4"
    text = "Hello, I am 42 years old. This is my voice, more or less!"
    assert main(["-q", "speak", "--actor", str(actor_dir), "--text", text, "-o", str(speech)]) == 0
    rate, samples = wavfile.read(speech)
    assert rate == 16000 and samples.dtype == np.int16 and 2.5 < len(samples) / rate < 8
    text_file = tmp_path / "lines.txt"
    text_file.write_text("Good morning. 3 short lines.\nThat is all.\n", encoding="utf-8")
    assert (
        main(
            [
                "-q",
                "generate",
                "--actor",
                str(actor_dir),
                "--text-file",
                str(text_file),
                "-o",
                str(video),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    info = probe(video)
    assert info.has_audio and (info.width, info.height) == (224, 224) and 1.5 < info.duration < 6
    # The same words as a speech file, the mouth aligned to their transcript.
    assert (
        main(
            [
                "-q",
                "generate",
                "--actor",
                str(actor_dir),
                "--audio",
                str(speech),
                "--transcript",
                text,
                "-o",
                str(video),
                "--device",
                "cpu",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["speak", "--text", ""], "text is empty"),
        (["speak", "--text", "?!"], "nothing in the text can be said"),
        (["speak"], "nothing to say"),
        (["speak", "--text", "hi", "--text-file", "lines.txt"], "not both"),
        (["speak", "--text-file", "missing.txt"], "no such text file"),
        (["speak", "--text-file", "latin1.txt"], "not UTF-8"),
        (["speak", "--text-file", "."], "a folder, not a text file"),
        (["generate", "--text-file", "."], "a folder, not a text file"),
        (["speak", "--text", "hi", "--tts-command", "false {wav}"], "failed (exit code 1)"),
        (["generate", "--text", "hi", "--audio", "speech.wav"], "not both"),
        (["generate", "--text", "   "], "text is empty"),
        (["generate", "--text", "hi", "--transcript", "hi"], "--transcript is for --audio"),
        (["generate", "--text-file", "book.txt", "--max-seconds", "3"], "longer than 3 s of speech"),
    ],
)
def test_bad_text_exits_2_with_one_line_and_writes_nothing(actor_dir, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    Path("latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    Path("book.txt").write_text("The boat is big. " * 20000)  # hours of speech
    out = tmp_path / ("out.wav" if argv[0] == "speak" else "out.mp4")
    assert main([*argv, "--actor", str(actor_dir), "-o", str(out)]) == 2
    assert message in assert_one_error_line(capsys)
    assert not out.exists()


def speaking_noise(path: Path) -> Path:
    """3 s of noise frames (no face) with a tone as speech: passes the checks before tracking."""
    t = np.arange(3 * 16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    return encode_video(path, np.random.default_rng(0).integers(0, 256, (75, 64, 64, 3), np.uint8), audio=tone)


@pytest.mark.parametrize(
    "case, message",
    [
        ("crop_size", "--crop-size 0: the face crop is at least 32 pixels"),
        ("negative_steps", "--audio2pose-steps -5: audio2pose training steps cannot be negative"),
        ("actor_is_a_file", "a file, not a directory; give a directory for the actor bundle"),
        ("actor_under_a_file", "is not a directory); give a directory you can write"),
        ("read_only", "is read-only); give a directory you can write"),
    ],
)
def test_personalize_refusals_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case, message):
    if case == "read_only" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory (actor_under_a_file is the case root cannot write)")
    video = speaking_noise(tmp_path / "clip.mp4")
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "locked").mkdir(mode=0o555)
    actors = {"actor_is_a_file": "file", "actor_under_a_file": "file/actor", "read_only": "locked/actor"}
    actor = actors.get(case, "new")
    extra = {"crop_size": ["--crop-size", "0"], "negative_steps": ["--audio2pose-steps", "-5"]}.get(case, [])
    before = sorted(tmp_path.rglob("*"))
    argv = ["personalize", str(video), "--actor", str(tmp_path / actor), "--preset", "tiny", "--device", "cpu"]
    assert main([*argv, "--face-model", "builtin", *extra]) == 2
    assert message in assert_one_error_line(capsys)
    assert sorted(tmp_path.rglob("*")) == before


def test_personalize_another_video_into_a_bundle_needs_overwrite(actor_dir, tmp_path, capsys, monkeypatch):
    assert "--overwrite" in _subcommands(build_parser())["personalize"].format_help()
    root = tmp_path / "actor"
    shutil.copytree(actor_dir, root)
    # The default face model where none is installed: the built-in one, without a line about it.
    monkeypatch.setenv("TALKFACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TALKFACE_FACE_MODEL", raising=False)
    argv = ["personalize", str(speaking_noise(tmp_path / "other.mp4")), "--actor", str(root), "--preset", "tiny"]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"talkface: error: --actor {root}: already the actor bundle of another video (vox_00010.mp4); "
        "give another --actor, or add --overwrite to replace it"
    ]


@pytest.mark.parametrize("case", ["same", "symlink", "hardlink", "dotdot", "text_file", "in_bundle", "speak_text_file"])
def test_an_output_that_is_an_input_is_refused(actor_dir, tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    actor = tmp_path / "actor"
    shutil.copytree(actor_dir, actor)
    # Real speech: without the check, generate runs and replaces the input.
    encode_video(Path("speech.mp4"), numbered_frames(25), audio=read_audio(sample_speech(), num_samples=16000))
    Path("lines.mp4").write_text("Hello there.\n")
    Path("lines.wav").write_text("Hello there.\n")
    os.symlink("speech.mp4", "link.mp4")
    os.link("speech.mp4", "hard.mp4")
    Path("sub").mkdir()
    argv, output, message = {
        "same": (["--audio", "speech.mp4"], "speech.mp4", "is the input speech.mp4"),
        "symlink": (["--audio", "link.mp4"], "speech.mp4", "is the input link.mp4"),
        "hardlink": (["--audio", "speech.mp4"], "hard.mp4", "is the input speech.mp4"),
        "dotdot": (["--audio", "speech.mp4"], "sub/../speech.mp4", "is the input speech.mp4"),
        "text_file": (["--text-file", "lines.mp4"], "lines.mp4", "is the input lines.mp4"),
        "in_bundle": (["--audio", "speech.mp4"], str(actor / "talk.mp4"), "inside the input folder"),
        "speak_text_file": (["--text-file", "lines.wav"], "lines.wav", "is the input lines.wav"),
    }[case]
    before = {path: path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()}
    command = ["speak"] if case.startswith("speak") else ["generate", "--device", "cpu"]
    assert main([*command, "--actor", str(actor), *argv, "-o", output]) == 2
    assert message in assert_one_error_line(capsys)
    assert {path: path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()} == before


OUTPUT_COMMANDS = {
    "generate": (["generate", "--device", "cpu", "--actor", "ACTOR"], "-o", "out.mp4"),
    "speak": (["speak", "--actor", "ACTOR", "--text", "hi"], "-o", "out.wav"),
    "evaluate": (["evaluate", "--device", "cpu", "--actor", "ACTOR", "--start", "2"], "--report", "report"),
    "track": (["track"], "-o", "track"),
    "reconstruct": (["reconstruct", "--device", "cpu", "--face-model", "builtin"], "-o", "recon"),
}
"""Per command writing outputs: its arguments (ACTOR: the actor bundle), output flag, an output name."""


@pytest.mark.parametrize("case", ["proc", "folder_or_file", "under_a_file", "read_only"])
@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    actor_dir, tmp_path, capsys, monkeypatch, command, case
):
    if case == "read_only" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder (proc is the case root cannot write either)")
    monkeypatch.chdir(tmp_path)
    argv, flag, name = OUTPUT_COMMANDS[command]
    argv = [str(actor_dir) if arg == "ACTOR" else arg for arg in argv]
    folder = "." not in name  # the command writes a folder of outputs
    Path("file").write_text("a file")
    Path("locked").mkdir(mode=0o555)
    output, message = {
        "proc": (f"/proc/{name}", "cannot write in /proc"),
        "folder_or_file": ("file", "is a file, not a folder") if folder else ("dir" + name[-4:], "is a folder"),
        "under_a_file": (f"file/{name}", "file is a file, not a folder"),
        "read_only": (f"locked/{name}", "cannot write in locked"),
    }[case]
    Path("dir" + name[-4:]).mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert main(["-q", *argv, flag, output]) == 2
    assert message in assert_one_error_line(capsys)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_video_whose_writing_fails_partway_is_one_line_and_leaves_nothing(actor_dir, tmp_path):
    """A full disk partway through the output (a file size limit here, in a generate of its own):
    the output's error, not the bundle's (whose frames are being read meanwhile)."""
    output = tmp_path / "out.mp4"
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    run = subprocess.run(
        [sys.executable, "-m", "personalize.cli", "-q", "generate", "--device", "cpu", "--actor", str(actor_dir)]
        + ["--audio", str(sample_speech()), "-o", str(output)],
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard)),  # of ~150 KB
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"talkface: error: {output}: could not write the video (File too large); free space on its disk "
        "or give an output elsewhere"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_personalizing_is_one_line(clips, tmp_path):
    """A file size limit stands in for the full disk; the begun bundle holds no partial file."""
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    run = subprocess.run(
        [sys.executable, "-m", "personalize.cli", "-q", "personalize", str(clips / ACTOR_CLIP), "--actor", "actor"]
        + ["--preset", "tiny", "--face-model", "builtin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard)),  # frames.zip is larger
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "talkface: error: could not write (File too large): the disk is full or a file size limit was reached; "
        "free space and run the command again (what was finished is kept)"
    )
    assert sorted(path.name for path in (tmp_path / "actor").iterdir()) == ["manifest.json", "personalize.log"]


def test_a_report_replaces_only_an_earlier_report(actor_dir, tmp_path, capsys):
    """The finished report takes the place of the --report folder: a folder of other files is refused."""
    actor = tmp_path / "actor"  # a copy: without the check the report would take the bundle's place
    shutil.copytree(actor_dir, actor)
    (tmp_path / "notes.txt").write_text("mine")
    for report, message in ((tmp_path, "not empty and not a talkface report"), (actor, "inside the input folder")):
        assert main(["evaluate", "--actor", str(actor), "--start", "2", "--report", str(report)]) == 2
        assert message in assert_one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (actor / "manifest.json").is_file()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--pose-amplitude", "nan"], "--pose-amplitude nan: the pose amplitude is a finite number >= 0"),
        (["--pose-amplitude", "inf"], "--pose-amplitude inf: the pose amplitude is a finite number >= 0"),
        (["--pose-amplitude", "-1"], "--pose-amplitude -1.0: the pose amplitude is a finite number >= 0"),
        (["--max-seconds", "-5"], "--max-seconds -5.0: the longest speech is a finite number of seconds > 0"),
    ],
)
def test_generate_settings_out_of_range_exit_2_with_one_line(actor_dir, tmp_path, capsys, option, message):
    out = tmp_path / "talk.mp4"
    assert main(["generate", "--actor", str(actor_dir), *option, "-o", str(out), "--device", "cpu"]) == 2
    assert message in assert_one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_personalize_ends_with_a_generate_command_to_paste(actor_dir, clips, tmp_path, caplog):
    root = tmp_path / "my actors" / "it's me"
    shutil.copytree(actor_dir, root)
    argv = [
        "personalize",
        str(clips / ACTOR_CLIP),
        "--actor",
        str(root),
        "--preset",
        "tiny",
        "--face-model",
        "builtin",
        "--device",
        "cpu",
    ]
    with caplog.at_level("INFO", logger="talkface"):
        assert main(["-q", *argv]) == 0  # every stage done: resumed at once
    hint = next(r.getMessage() for r in caplog.records if "next: talkface generate" in r.getMessage())
    words = shlex.split(hint.split("next: ")[1])
    assert words[words.index("--actor") + 1] == str(root)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seed", "-1"], "--seed -1: a seed is a whole number from 0 to 4294967295"),
        (["--seed", "4294967296"], "--seed 4294967296: a seed is a whole number from 0 to 4294967295"),
        (["--end", "nan"], "--end nan: give a finite number"),
        (["--end", "inf"], "--end inf: give a finite number"),
    ],
)
def test_nonsense_numbers_are_refused_before_any_work(clips, tmp_path, capsys, argv, message):
    """A seed numpy cannot take failed 43 s in, in the refine stage, with a traceback and a partial bundle."""
    actor = tmp_path / "actor"
    assert main(["personalize", str(clips / ACTOR_CLIP), "--actor", str(actor), "--preset", "tiny", *argv]) == 2
    assert assert_one_error_line(capsys) == f"talkface: error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_a_start_that_is_not_a_number_is_refused(actor_dir, tmp_path, capsys):
    assert main(["evaluate", "--actor", str(actor_dir), "--start", "nan", "--report", str(tmp_path / "r")]) == 2
    assert assert_one_error_line(capsys) == "talkface: error: --start nan: give a finite number"
    assert list(tmp_path.iterdir()) == []


def test_settings_from_a_manifest_are_checked_as_the_cli_checks_them():
    from personalize.options import personalize_config

    with pytest.raises(InputError, match="^--end nan: give a finite number$"):
        personalize_config("tiny", "cpu", end=float("nan"))
    with pytest.raises(InputError, match="^--seed -1: a seed is a whole number"):
        personalize_config("tiny", "cpu", seed=-1)


def _stop_when(process: subprocess.Popen, ready, sig: int, timeout: float = 240) -> tuple[int, str]:
    """Sends `sig` to `process` once `ready()` holds; its exit code and stderr."""
    import time

    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the command ended before it could be stopped"
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_terminated_generate_says_so_and_leaves_no_temporary(actor_dir, tmp_path, sig):
    """It exited 143 with no message and left `.OUT.<hex>.tmp.mp4`."""
    import signal

    speech = tmp_path / "long.wav"
    wavfile.write(speech, 16000, np.tile(read_audio(sample_speech()), 4))  # 16 s
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "personalize.cli", "-q", "generate", "--device", "cpu", "--actor", str(actor_dir)]
        + ["--audio", str(speech), "-o", str(out / "talk.mp4")],
        stderr=subprocess.PIPE,
        text=True,
    )
    signum = signal.Signals[sig]
    code, err = _stop_when(process, lambda: out.is_dir() and any(out.iterdir()), signum)
    assert code == 128 + signum
    assert err.strip() == f"talkface: stopped by {sig}; finished files are kept, nothing half-written is left"
    assert list(out.iterdir()) == []


def test_a_terminated_text_generate_leaves_no_copy_of_the_voice(actor_dir, tmp_path):
    """A terminated --text run left /tmp/talkface-reference-*/reference.wav (the actor's voice,
    for a voice-cloning engine) and /tmp/talkface-tts-*."""
    import signal

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    engine = "sh -c 'sleep 60' {reference} {wav}"  # stopped while it clones the voice
    process = subprocess.Popen(
        [sys.executable, "-m", "personalize.cli", "-q", "generate", "--device", "cpu", "--actor", str(actor_dir)]
        + ["--text", "The boat is big.", "--tts-command", engine, "-o", str(tmp_path / "talk.mp4")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    voice_copied = lambda: any(tmp.glob("talkface-reference-*/reference.wav")) and any(tmp.glob("talkface-tts-*"))  # noqa: E731
    code, _ = _stop_when(process, voice_copied, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert [p.name for p in tmp.glob("talkface-*")] == []
    assert not (tmp_path / "talk.mp4").exists()
