"""Bad input and faults, probed through the CLI as a user meets them: each case's command, exit
code, the last line it printed and what it left behind, as a markdown table.

Every case runs `talkface` in its own process inside a scratch folder made from the shared clips
(inputs are written with PyAV: truncated, silent, two faces, 4K, 60 fps, VFR...). A case passes
when it exits 0 with a correct result (checked: the output plays, has the expected frames or
the bundle loads), or exits non-zero with one line naming the problem, leaving nothing new but
the folders it was told to write into, and those empty. Killed runs are SIGKILLed during each
personalize stage in turn and resumed.

    python scripts/probe_inputs.py --work out/probe --markdown out/probe.md
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from personalize.bundle import MANIFEST_NAME, Actor
from personalize.pipeline import STAGES
from recon3d.video import VideoWriter, probe, read_audio, read_frames

TALKFACE = [sys.executable, "-m", "personalize.cli"]
CLIP = "vox_00015.mp4"
"""A 224x224 talking head: small, so the cases that must succeed stay quick."""
FAST = ["--preset", "tiny"]


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str
    """"error" (non-zero, one line) or "ok" (zero and `check` holds)."""
    check: Callable[[Path], str | None] | None = None
    """For "ok": returns what is wrong, or None."""
    writes: tuple[str, ...] = ()
    """Paths (relative to the work folder) the command was told to write: on an error they must
    not exist, or be empty folders that existed before."""


def write_video(path: Path, frames: np.ndarray, audio: np.ndarray | None, fps: float = 25.0) -> str:
    with VideoWriter(path, fps, audio) as writer:
        for frame in frames:
            writer.write(frame)
    return path.name


def write_vfr(path: Path, frames: np.ndarray, audio: np.ndarray) -> str:
    """Frames at irregular times (gaps of 20-60 ms), as phones record, and the soundtrack."""
    gaps = np.random.default_rng(0).integers(20, 61, len(frames))
    pts = np.concatenate([[0], np.cumsum(gaps)[:-1]])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=16000)
        for image, t in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(t), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        samples = audio[: int(pts[-1] / 1000 * 16000)].astype(np.float32)
        chunk = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path.name


def write_tagged(
    path: Path, frames: np.ndarray, audio: np.ndarray, rotation: int = 0, aspect: Fraction | None = None
) -> str:
    """A video as phones and broadcast footage store it: turned, with a display rotation that turns
    it back (degrees counter-clockwise), or with non-square pixels (a sample aspect ratio)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        if aspect is not None:
            stream.codec_context.sample_aspect_ratio = aspect
        sound = container.add_stream("aac", rate=16000)
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        chunk = av.AudioFrame.from_ndarray(audio.astype(np.float32)[None], format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path.name


def write_two_tracks(path: Path, frames: np.ndarray, audio: np.ndarray) -> str:
    """A video whose first audio track is silent and whose second holds the speech."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        tracks = [container.add_stream("aac", rate=16000) for _ in range(2)]
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        for track, samples in zip(tracks, (np.zeros_like(audio), audio)):
            chunk = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, 0
            container.mux(track.encode(chunk))
            container.mux(track.encode(None))
    return path.name


def write_audio(path: Path, audio: np.ndarray, codec: str, rate: int, layout: str) -> str:
    frame = av.AudioFrame.from_ndarray(np.asarray(audio, np.float32)[None], format="flt", layout="mono")
    frame.sample_rate, frame.pts = 16000, 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.name


def make_inputs(work: Path, clips: Path) -> None:
    """The probe's inputs in `work/in` (made once)."""
    folder = work / "in"
    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    frames, audio = read_frames(clips / CLIP)[:100], read_audio(clips / CLIP)[: 4 * 16000]
    write_video(folder / "clip.mp4", frames, audio)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video\n")
    data = (clips / CLIP).read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    write_video(folder / "no_audio.mp4", frames, None)
    write_video(folder / "silent.mp4", frames, np.zeros_like(audio))
    noise = np.random.default_rng(0).integers(0, 256, frames.shape, np.uint8)
    write_video(folder / "no_face.mp4", noise, audio)
    write_video(folder / "two_faces.mp4", np.concatenate([frames, frames[:, :, ::-1]], 2), audio)
    write_video(folder / "one_second.mp4", frames[:25], audio[:16000])
    import cv2

    big = np.stack([cv2.resize(f, (2160, 2160), interpolation=cv2.INTER_CUBIC) for f in frames[:75]])
    wide = np.zeros((75, 2160, 3840, 3), np.uint8)
    wide[:, :, 840:3000] = big
    del big
    write_video(folder / "4k.mp4", wide, audio[: 3 * 16000])
    del wide
    write_video(folder / "odd.mp4", frames[:, :223, :221], audio)
    tall = np.zeros((100, 400, 224, 3), np.uint8)
    tall[:, 88:312] = frames
    write_video(folder / "vertical.mp4", tall, audio)
    write_video(folder / "60fps.mp4", np.repeat(frames, 12, 0)[::5], audio, fps=60)
    write_vfr(folder / "vfr.mkv", frames, audio)
    leaving = frames.copy()
    leaving[40:70] = 0
    write_video(folder / "face_leaves.mp4", leaving, audio)
    write_video(folder / "my clip é.mp4", frames, audio)
    speech = read_audio(clips.parent / "audio" / "retalk_a1_5s.wav")[: 3 * 16000]
    write_audio(folder / "speech.wav", speech, "pcm_s16le", 16000, "mono")
    with wave.open(str(folder / "empty.wav"), "wb") as empty:  # a header and no samples
        empty.setnchannels(1), empty.setsampwidth(2), empty.setframerate(16000)
    write_audio(folder / "silent.wav", np.zeros(3 * 16000), "pcm_s16le", 16000, "mono")
    write_audio(folder / "8k.wav", speech, "pcm_s16le", 8000, "mono")
    write_audio(folder / "48k_stereo.wav", speech, "pcm_s16le", 48000, "stereo")
    write_audio(folder / "speech.mp3", speech, "libmp3lame", 44100, "mono")
    write_audio(folder / "speech.flac", speech, "flac", 16000, "mono")
    write_audio(folder / "speech.ogg", speech, "libopus", 48000, "stereo")
    write_video(folder / "speech.mp4", frames[:75], speech)
    (folder / "text.wav").write_text("hello\n")
    shutil.copy(Path(cv2.__file__).parent / "data" / "haarcascade_frontalface_default.xml", folder / "xml.wav")
    # Issue 31's second probe.
    tall = np.zeros((100, 300, 224, 3), np.uint8)
    tall[:, 38:262] = frames  # plays upright at 224x300, stored turned a quarter counter-clockwise
    write_tagged(folder / "phone.mp4", np.rot90(tall, 1, axes=(1, 2)), audio, rotation=-90)
    write_tagged(folder / "sar.mp4", frames, audio, aspect=Fraction(4, 3))
    write_two_tracks(folder / "two_tracks.mkv", frames, audio)
    far = np.full((100, 1080, 1920, 3), 90, np.uint8)
    for k, frame in enumerate(frames):
        far[k, 600:860, 1300:1560] = cv2.resize(frame, (260, 260), interpolation=cv2.INTER_AREA)
    write_video(folder / "far.mp4", far, audio)
    del far
    from scipy.io import wavfile

    broken = speech.copy()
    broken[[1000, 20000, 30000]] = [np.nan, np.inf, -np.inf]
    wavfile.write(folder / "nan.wav", 16000, broken)
    wavfile.write(folder / "int_scaled.wav", 16000, speech * 32767)  # a float file in int16 units
    (folder / "huge.txt").write_text("The boat is big. " * 20000)
    (folder / "unicode.txt").write_text("Grüße aus Köln — naïve café, 東京 and ½ a crêpe.\n")
    (folder / "done").touch()


def run(argv: list[str], cwd: Path, timeout: float = 900) -> tuple[int, str, float, int]:
    """Exit code, last line printed, seconds, and how many lines went to stderr."""
    start = time.perf_counter()
    done = subprocess.run(
        TALKFACE + ["-q"] + argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=os.environ
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return (
        done.returncode,
        lines[-1] if lines else "",
        time.perf_counter() - start,
        len([line for line in done.stderr.splitlines() if line.strip()]),
    )


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def plays(frames: int) -> Callable[[Path], str | None]:
    def check(path: Path) -> str | None:
        if not path.is_file():
            return "no output"
        info = probe(path)
        return None if abs(info.num_frames() - frames) <= 1 and info.has_audio else f"{info.num_frames()} frames"

    return check


def shown_as(path: Path, size: tuple[int, int]) -> str | None:
    info = probe(path)
    return None if (info.width, info.height) == size else f"{info.width}x{info.height}, not {size[0]}x{size[1]}"


def loads(path: Path) -> str | None:
    try:
        Actor.load(path)
    except Exception as err:  # the probe reports any failure
        return f"bundle does not load: {err}"
    return None


def bundle_cases(work: Path) -> list[Case]:
    """Bundles broken in the ways users and disks break them, each made from the good one."""
    good = work / "actor"
    cases = []

    def variant(name: str, change: Callable[[Path], None]) -> str:
        root = work / "bundles" / name
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(good, root)
        change(root)
        return str(root.relative_to(work))

    def tamper(root: Path) -> None:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
        manifest["settings"]["photo"] = not manifest["settings"]["photo"]
        (root / MANIFEST_NAME).write_text(json.dumps(manifest))

    def partial(root: Path) -> None:
        (root / "mouth.npz").unlink()

    def foreign(root: Path) -> None:
        shutil.rmtree(root)
        root.mkdir()
        (root / "notes.txt").write_text("my holiday photos\n")

    def pickled(root: Path) -> None:
        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {work / 'PWNED'}",))

        (root / "audio2pose.pt").write_bytes(pickle.dumps(Payload()))

    def truncated(root: Path) -> None:
        data = (root / "frames.zip").read_bytes()
        (root / "frames.zip").write_bytes(data[: len(data) // 2])

    for name, change, what in (
        ("tampered", tamper, "manifest.json edited"),
        ("partial", partial, "mouth.npz deleted"),
        ("foreign", foreign, "a folder of other files"),
        ("pickle", pickled, "audio2pose.pt a pickle that runs a command"),
        ("truncated_frames", truncated, "frames.zip cut in half"),
    ):
        actor = variant(name, change)
        cases.append(
            Case(
                f"bundle: {what}",
                ["generate", "--actor", actor, "--audio", "in/speech.wav", "-o", f"o/{name}.mp4"],
                "error",
                writes=(f"o/{name}.mp4",),
            )
        )
    return cases


def cases(work: Path) -> list[Case]:
    out = []
    for video, what in (
        ("missing.mp4", "a missing file"),
        ("empty.mp4", "a 0-byte file"),
        ("text.mp4", "a text file"),
        ("truncated.mp4", "a truncated mp4"),
        ("no_audio.mp4", "no audio stream"),
        ("silent.mp4", "a silent soundtrack"),
        ("no_face.mp4", "no face (noise)"),
        ("two_faces.mp4", "two faces side by side"),
        ("one_second.mp4", "a 1 s clip"),
        ("face_leaves.mp4", "the face leaves the frame for 1.2 s"),
    ):
        name = Path(video).stem
        out.append(
            Case(
                f"video: {what}",
                ["personalize", f"in/{video}", "--actor", f"a/{name}", *FAST],
                "error",
                writes=(f"a/{name}",),
            )
        )
    for video, what in (
        ("4k.mp4", "4K (3840x2160), 3 s"),
        ("odd.mp4", "odd size 221x223"),
        ("vertical.mp4", "vertical 224x400"),
        ("60fps.mp4", "60 fps"),
        ("vfr.mkv", "variable frame rate (mkv, 20-60 ms between frames)"),
        ("my clip é.mp4", "a path with a space and é"),
        ("phone.mp4", "a phone video stored sideways (display rotation -90), plays 224x300"),
        ("sar.mp4", "non-square pixels (224x224, SAR 4:3), plays 299x224"),
        ("two_tracks.mkv", "two audio tracks, the first silent"),
        ("far.mp4", "a face 130 px tall in 1920x1080"),
    ):
        name = Path(video).stem.replace(" ", "_")
        out.append(
            Case(
                f"video: {what}",
                ["personalize", f"in/{video}", "--actor", f"a/{name}", *FAST],
                "ok",
                check=lambda work, name=name: loads(work / "a" / name),
            )
        )
    out += bundle_cases(work)
    out.append(
        Case(
            "bundle: a folder that does not exist",
            ["generate", "--actor", "nowhere", "--audio", "in/speech.wav", "-o", "o/nowhere.mp4"],
            "error",
            writes=("o/nowhere.mp4",),
        )
    )
    for speech, what in (
        ("empty.wav", "an empty wav"),
        ("silent.wav", "a silent wav"),
        ("text.wav", "a text file named .wav"),
        ("xml.wav", "an XML file named .wav"),
        ("missing.wav", "a missing file"),
        ("no_audio.mp4", "a video without sound"),
    ):
        name = Path(speech).stem
        out.append(
            Case(
                f"speech: {what}",
                ["generate", "--actor", "actor", "--audio", f"in/{speech}", "-o", f"o/{name}.mp4"],
                "error",
                writes=(f"o/{name}.mp4",),
            )
        )
    for video, size in (("phone.mp4", (224, 300)), ("sar.mp4", (299, 224))):
        name = Path(video).stem
        out.append(
            Case(
                f"generate: the actor of {video} at its displayed size {size[0]}x{size[1]}",
                ["generate", "--actor", f"a/{name}", "--audio", "in/speech.wav", "-o", f"o/{name}.mp4"],
                "ok",
                check=lambda work, name=name, size=size: (
                    plays(75)(work / "o" / f"{name}.mp4") or shown_as(work / "o" / f"{name}.mp4", size)
                ),
            )
        )
    for argv, what in (
        (["--seed", "-1"], "--seed -1"),
        (["--end", "nan"], "--end nan"),
    ):
        out.append(
            Case(
                f"option: {what}",
                ["personalize", "in/clip.mp4", "--actor", "a/bad_option", *FAST, *argv],
                "error",
                writes=("a/bad_option",),
            )
        )
    out.append(
        Case(
            "option: evaluate --start nan",
            ["evaluate", "--actor", "actor", "--start", "nan", "--report", "o/r_nan"],
            "error",
            writes=("o/r_nan",),
        )
    )
    for speech, what in (
        ("nan.wav", "a float wav with NaN and inf samples"),
        ("int_scaled.wav", "a float wav in int16 units (32767 x full scale)"),
        ("8k.wav", "8 kHz wav"),
        ("48k_stereo.wav", "48 kHz stereo wav"),
        ("speech.mp3", "mp3"),
        ("speech.flac", "flac"),
        ("speech.ogg", "ogg (opus)"),
        ("speech.mp4", "a video's soundtrack"),
    ):
        name = Path(speech).name.replace(".", "_")
        out.append(
            Case(
                f"speech: {what}",
                ["generate", "--actor", "actor", "--audio", f"in/{speech}", "-o", f"o/{name}.mp4"],
                "ok",
                check=lambda work, name=name: plays(75)(work / "o" / f"{name}.mp4"),
            )
        )
    out += [
        Case(
            "text: empty",
            ["generate", "--actor", "actor", "--text", "", "-o", "o/t_empty.mp4"],
            "error",
            writes=("o/t_empty.mp4",),
        ),
        Case(
            "text: only punctuation",
            ["generate", "--actor", "actor", "--text", "?!...", "-o", "o/t_punct.mp4"],
            "error",
            writes=("o/t_punct.mp4",),
        ),
        Case(
            "text: 340 KB (hours of speech)",
            ["generate", "--actor", "actor", "--text-file", "in/huge.txt", "-o", "o/t_huge.mp4"],
            "error",
            writes=("o/t_huge.mp4",),
        ),
        Case(
            "text: non-ASCII (German, French, Japanese)",
            ["speak", "--actor", "actor", "--text-file", "in/unicode.txt", "-o", "o/t_unicode.wav"],
            "ok",
            check=lambda work: None if (work / "o" / "t_unicode.wav").is_file() else "no output",
        ),
        Case(
            "output: in a folder that does not exist",
            ["generate", "--actor", "actor", "--audio", "in/speech.wav", "-o", "o/no/such/dir/x.mp4"],
            "ok",
            check=lambda work: plays(75)(work / "o/no/such/dir/x.mp4"),
        ),
        Case(
            "output: on a read-only filesystem (/proc)",
            ["generate", "--actor", "actor", "--audio", "in/speech.wav", "-o", "/proc/talkface.mp4"],
            "error",
        ),
        Case(
            "output: under a file",
            ["generate", "--actor", "actor", "--audio", "in/speech.wav", "-o", "in/speech.wav/x.mp4"],
            "error",
        ),
        Case(
            "output: the input itself",
            ["generate", "--actor", "actor", "--audio", "in/speech.mp4", "-o", "in/speech.mp4"],
            "error",
        ),
        Case(
            "output: not .mp4",
            ["generate", "--actor", "actor", "--audio", "in/speech.wav", "-o", "o/x.avi"],
            "error",
            writes=("o/x.avi",),
        ),
    ]
    return out


def run_case(case: Case, work: Path) -> dict:
    before = snapshot(work)
    code, last, seconds, stderr_lines = run(case.argv, work)
    after = snapshot(work)
    new = sorted(p for p in after - before if not any(p.startswith(w + "/") for w in ("in",)))
    if case.expect == "ok":
        problem = None if code == 0 else f"exit {code}"
        problem = problem or case.check(work)
    else:
        problem = None if code != 0 else "exit 0"
        if not problem and stderr_lines != 1:
            problem = f"{stderr_lines} lines on stderr"
        left = [p for p in new if (work / p).is_file() or any((work / p).iterdir())]
        if not problem and left:
            problem = f"left {left[:3]}"
    return {
        "case": case.name,
        "command": "talkface " + " ".join(f'"{a}"' if (" " in a or not a) else a for a in case.argv),
        "exit": code,
        "message": last,
        "leftovers": "(its output)" if case.expect == "ok" and code == 0 else ", ".join(new[:4]) or "none",
        "seconds": round(seconds, 1),
        "ok": problem is None,
        "problem": problem,
    }


def killed_at_every_stage(work: Path) -> list[dict]:
    """personalize SIGKILLed in each stage in turn (0.1 s after the stage before it logged its
    end), resumed each time; the last run must finish and the bundle load."""
    root = work / "a" / "killed"
    shutil.rmtree(root, ignore_errors=True)
    actor = str(root.relative_to(work))
    rows = []
    for k, stage in enumerate(STAGES):
        argv = TALKFACE + ["-v", "personalize", "in/clip.mp4", "--actor", actor, *FAST]
        process = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The stage before logs "<stage>: 1.2 s, ..." at its end (its progress bar "<stage>:  40%|").
        after = re.compile(rf"INFO: {STAGES[k - 1]}: (\d+\.\d s|done before)" if k else "INFO: personalize ")
        for line in process.stderr:
            # Progress bars share the lines (carriage returns and cursor moves between updates).
            if after.search(line):
                time.sleep(0.1)
                process.send_signal(signal.SIGKILL)
                break
        process.wait()
        manifest = root / MANIFEST_NAME
        finished = list(json.loads(manifest.read_text())["stages"]) if manifest.exists() else []
        rows.append(
            {
                "meant": stage,
                "killed in": STAGES[len(finished)] if len(finished) < len(STAGES) else "(done)",
                "exit": process.returncode,
            }
        )
    code, last, seconds, _ = run(["personalize", "in/clip.mp4", "--actor", actor, *FAST], work)
    temporaries = [p.name for p in root.rglob("*") if ".tmp" in p.name]
    rows.append({"resumed": code, "message": last, "loads": loads(root) is None, "temporaries": temporaries})
    return rows


def two_generates_to_one_output(work: Path) -> dict:
    argv = TALKFACE + ["-q", "generate", "--actor", "actor", "--audio", "in/speech.wav", "-o", "o/same.mp4"]
    first = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    codes = [first.wait(), second.wait()]
    problem = plays(75)(work / "o" / "same.mp4")
    left = [p.name for p in (work / "o").iterdir() if p.name.startswith(".same")]
    return {"exits": codes, "output": problem or "plays, 75 frames", "temporaries left": left}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=Path("../shared/data/clips"))
    parser.add_argument("--work", type=Path, default=Path("out/probe"))
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--only", nargs="*", help="cases whose name contains one of these")
    args = parser.parse_args()
    work = args.work.resolve()
    make_inputs(work, args.clips.resolve())
    if not (work / "actor" / MANIFEST_NAME).exists():
        code, last, _, _ = run(["personalize", "in/clip.mp4", "--actor", "actor", *FAST], work)
        if code:
            raise SystemExit(f"the good actor failed: {last}")
    for folder in ("a", "o"):
        (work / folder).mkdir(exist_ok=True)
    for path in (work / "o").iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    rows = []
    for case in cases(work):
        if args.only and not any(word in case.name for word in args.only):
            continue
        for written in case.writes:
            if (work / written).is_dir():
                shutil.rmtree(work / written)
        rows.append(run_case(case, work))
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    extra = {}
    if not args.only or "killed" in args.only:
        extra["killed"] = killed_at_every_stage(work)
        print(json.dumps(extra["killed"]), flush=True)
    if not args.only or "same" in args.only:
        extra["same output"] = two_generates_to_one_output(work)
        print(json.dumps(extra["same output"]), flush=True)
    extra["pickle ran"] = (work / "PWNED").exists()
    table = ["| # | case | command | exit | message | leftovers | ok |", "|---|---|---|---|---|---|---|"]
    for i, row in enumerate(rows, 1):
        message = row["message"].replace("|", "\\|").replace(str(work) + "/", "")
        table.append(
            f"| {i} | {row['case']} | `{row['command']}` | {row['exit']} | {message} | {row['leftovers']} | "
            f"{'yes' if row['ok'] else 'NO: ' + row['problem']} |"
        )
    text = "\n".join(table) + "\n\n" + json.dumps(extra, indent=1, ensure_ascii=False) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
