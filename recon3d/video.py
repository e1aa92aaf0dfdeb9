"""Video ingest and writing: any common container in, 25 fps RGB frames + mono 16 kHz audio out.

Time convention: t = 0 is the first decoded video frame. Output frame k shows the source frame
whose start time is nearest to k / fps (as ffmpeg's fps filter does), so variable frame rate and
30 fps sources map onto a regular 25 fps grid of round(duration * fps) frames. Audio is placed on
the same clock: sample n is at time n / sample_rate, and audio that starts after the video is
padded with silence (before it, trimmed).

A still image (png, jpg, ...) is accepted wherever a video is, as a one-frame video without audio.

Frames are shown as a player shows them: a display rotation (phones store portrait video sideways
with one) is applied and non-square pixels (a sample aspect ratio) are resampled to square ones, so
`probe`'s width and height are the displayed size and tracking sees the face upright. Of several
audio tracks, the loudest is the speech (a silent first track is common in screen recordings).

Frames are `(H, W, 3)` uint8 RGB arrays; stacks are `(T, H, W, 3)`; audio is `(N,)` float32 in
[-1, 1].
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageOps

from recon3d.errors import InputError

log = logging.getLogger("talkface")

VIDEO_FPS = 25.0
AUDIO_RATE = 16000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_HINT = "give a wav, mp3, flac, ogg or a video with a soundtrack"
"""What to do about a file read for its sound that has none."""


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` finds in a media file."""

    path: str
    width: int
    height: int
    duration: float
    """Seconds of video (0 for a still image)."""
    source_fps: float
    """Average frame rate of the source (0 for a still image)."""
    video_codec: str
    audio_rate: int | None
    """Sample rate of the first audio stream, None when there is no audio stream."""
    audio_channels: int | None
    is_image: bool

    @property
    def has_audio(self) -> bool:
        return self.audio_rate is not None

    def num_frames(self, fps: float = VIDEO_FPS) -> int:
        """Frames after resampling to `fps`: round(duration * fps), at least one."""
        return max(1, round(self.duration * fps))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _check_exists(path: Path, audio: bool = False) -> None:
    """`audio`: the file is read for its sound (speech), so the errors speak of audio files."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise InputError(f"{path}: not a file; {AUDIO_HINT if audio else 'give a video or image file'}")
    if path.stat().st_size == 0:
        if audio:
            raise InputError(f"{path}: not a readable audio file (0 bytes); {AUDIO_HINT}")
        raise InputError(f"{path}: the file is empty (zero length); give a video with frames")


@contextlib.contextmanager
def _open_container(path: Path, audio: bool = False) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        if audio:
            raise InputError(f"{path}: not a readable audio file ({err.strerror}); {AUDIO_HINT}") from None
        raise InputError(f"{path}: not a readable video ({err.strerror}); give an mp4/mov/mkv/webm file") from None
    try:
        yield container
    finally:
        container.close()


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise InputError(f"{path}: has no video stream; give a video of the actor's face")
    return container.streams.video[0]


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            # A phone photo's EXIF orientation turns it upright, as viewers show it.
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, SyntaxError, ValueError):
        raise InputError(f"{path}: not a readable image; give a png/jpg file or a video") from None


@dataclass(frozen=True)
class Display:
    """How a player shows a video's stored frames: pixels `pixel_aspect` times as wide as tall
    (the sample aspect ratio) resampled to square ones, then turned `quarter_turns` times 90
    degrees counter-clockwise (the container's display matrix)."""

    pixel_aspect: Fraction = Fraction(1)
    quarter_turns: int = 0

    @classmethod
    def of(cls, stream: av.video.stream.VideoStream, frame: av.VideoFrame | None) -> Display:
        aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio or Fraction(1)
        # The display matrix comes with each decoded frame (FFmpeg attaches the stream's).
        rotation = getattr(frame, "rotation", 0) or 0
        return cls(Fraction(aspect) if aspect > 0 else Fraction(1), round(rotation / 90) % 4)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) shown for stored frames of `width` x `height`."""
        width = max(1, round(width * self.pixel_aspect))
        return (height, width) if self.quarter_turns % 2 else (width, height)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """A stored `(H, W, 3)` frame as shown."""
        if self.pixel_aspect != 1:
            width = max(1, round(image.shape[1] * self.pixel_aspect))
            method = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_CUBIC
            image = cv2.resize(image, (width, image.shape[0]), interpolation=method)
        if self.quarter_turns:
            image = np.ascontiguousarray(np.rot90(image, self.quarter_turns))
        return image


def probe(path: str | os.PathLike) -> MediaInfo:
    """Size (as displayed, see `Display`), duration, frame rate and streams of a video (or image)
    file, decoding one frame at most."""
    path = Path(path)
    _check_exists(path)
    if _is_image(path):
        height, width = _read_image(path).shape[:2]
        return MediaInfo(str(path), width, height, 0.0, 0.0, "image", None, None, is_image=True)
    with _open_container(path) as container:
        video = _video_stream(container, path)
        display = Display.of(video, _first_frame(container, video))
        width, height = display.size(video.codec_context.width, video.codec_context.height)
        rate = video.average_rate or video.guessed_rate or 0
        if video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            path=str(path),
            width=width,
            height=height,
            duration=duration,
            source_fps=float(rate),
            video_codec=video.codec_context.name,
            audio_rate=audio.rate if audio is not None else None,
            audio_channels=audio.channels if audio is not None else None,
            is_image=False,
        )


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame | None:
    """The first decoded frame; None for a stream that decodes to nothing (decoding says so)."""
    try:
        return next(container.decode(stream), None)
    except av.error.FFmpegError:
        return None


def _decode_timed(path: Path) -> Iterator[tuple[float, float, np.ndarray]]:
    """Yields (start time from the first frame, frame duration, RGB frame as displayed) in display order."""
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        default_step = 1.0 / float(rate) if rate else 1.0 / VIDEO_FPS
        t0 = None
        t = -default_step
        display = None
        try:
            for frame in container.decode(stream):
                # Frames without a timestamp follow the previous one by one nominal frame.
                t = frame.time if frame.time is not None else t + default_step
                t0 = t if t0 is None else t0
                step = float(frame.duration * frame.time_base) if frame.duration else default_step
                display = display or Display.of(stream, frame)
                yield t - t0, step, display.apply(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as err:
            raise InputError(f"{path}: the video is corrupt ({err.strerror}); re-encode or re-download it") from None
        if t0 is None:
            raise InputError(f"{path}: the video has no frames (zero length); give a video with frames")


def iter_frames(path: str | os.PathLike, fps: float = VIDEO_FPS) -> Iterator[np.ndarray]:
    """Decodes a video (or image) into RGB frames resampled to `fps`, streaming.

    Memory stays at two frames whatever the length. The number of frames is round(duration * fps)
    where duration runs from the first frame's start to the last frame's end.
    """
    path = Path(path)
    _check_exists(path)
    if _is_image(path):
        yield _read_image(path)
        return
    k = 0  # next output frame index
    prev: tuple[float, float, np.ndarray] | None = None
    for current in _decode_timed(path):
        if prev is not None:
            # Output times before the midpoint of two source frames take the earlier one.
            switch = 0.5 * (prev[0] + current[0])
            while k / fps < switch:
                yield prev[2]
                k += 1
        prev = current
    assert prev is not None  # _decode_timed raises on zero frames
    end = prev[0] + prev[1]
    total = max(1, round(end * fps))
    while k < total:
        yield prev[2]
        k += 1


def read_frames(path: str | os.PathLike, fps: float = VIDEO_FPS) -> np.ndarray:
    """All frames of a short clip as one `(T, H, W, 3)` uint8 array (see `iter_frames`)."""
    return np.stack(list(iter_frames(path, fps)))


def read_audio(path: str | os.PathLike, sample_rate: int = AUDIO_RATE, num_samples: int | None = None) -> np.ndarray:
    """The soundtrack as mono float32 at `sample_rate`, on the video's clock.

    Of several audio tracks, the loudest (RMS) is read. For a file with video, t = 0 is the first
    video frame; `num_samples` pads with silence or trims (pass the video's frame count *
    sample_rate / fps to get exactly matching lengths). Samples that are not numbers (NaN, inf:
    float files can hold them) are read as silence, float samples far beyond full scale are scaled
    down to it, and hard clipping is warned of (`_clean_samples`). Raises InputError when there is no audio stream.
    """
    path = Path(path)
    _check_exists(path, audio=True)
    if _is_image(path):
        raise InputError(f"{path}: an image has no sound; {AUDIO_HINT}")
    with _open_container(path, audio=True) as container:
        if not container.streams.audio:
            raise InputError(f"{path}: has no audio stream (no sound); {AUDIO_HINT}")
        streams = list(container.streams.audio)
        resamplers = {s.index: av.AudioResampler(format="flt", layout="mono", rate=sample_rate) for s in streams}
        chunks: dict[int, list[np.ndarray]] = {s.index: [] for s in streams}
        try:
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    chunks[packet.stream.index].extend(
                        f.to_ndarray().reshape(-1) for f in resamplers[packet.stream.index].resample(frame)
                    )
            for index, resampler in resamplers.items():
                chunks[index].extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except av.error.FFmpegError as err:
            raise InputError(f"{path}: the audio is corrupt ({err.strerror}); re-encode or re-download it") from None
        stream = streams[0]
        if len(streams) > 1:
            loudness = {s.index: _rms(chunks[s.index]) for s in streams}
            stream = max(streams, key=lambda s: loudness[s.index])
            log.info(
                "%s: %d audio tracks (RMS %s); reading track %d, the loudest",
                path.name,
                len(streams),
                ", ".join(f"{loudness[s.index]:.3g}" for s in streams),
                streams.index(stream) + 1,
            )
        offset = 0.0  # audio start minus video start, seconds
        if container.streams.video and stream.start_time is not None:
            video = container.streams.video[0]
            if video.start_time is not None:
                offset = float(stream.start_time * stream.time_base - video.start_time * video.time_base)
        chunks = chunks[stream.index]
    # Concatenated once, into place after the leading silence: each extra copy of 10 minutes of
    # speech would be 38 MB more peak memory.
    shift = round(offset * sample_rate)
    audio = np.zeros(max(0, shift) + sum(len(c) for c in chunks), np.float32)
    if chunks:
        np.concatenate(chunks, out=audio[max(0, shift) :])
    audio = audio[-shift:] if shift < 0 else audio
    _clean_samples(path, audio)
    if num_samples is not None:
        audio = np.pad(audio[:num_samples], (0, max(0, num_samples - len(audio))))
    return audio


def _rms(chunks: list[np.ndarray]) -> float:
    total = sum(float(np.square(np.nan_to_num(c, posinf=0.0, neginf=0.0), dtype=np.float64).sum()) for c in chunks)
    return math.sqrt(total / max(1, sum(len(c) for c in chunks)))


_WARNED: set[tuple[str, str]] = set()
"""(file, problem) pairs already warned of: the pipeline reads a soundtrack more than once."""


OVER_FULL_SCALE = 1.5
"""A peak this far above full scale is a float file in the wrong units (int16-scaled values, say),
not loud speech: it is scaled down to full scale. Resampling a full-scale int recording overshoots
by a few percent, which is kept as it is."""
HARD_CLIPPED_SHARE = 0.005
"""Share of samples at full scale from which a recording counts as hard clipped (distorted)."""


def _clean_samples(path: Path, audio: np.ndarray) -> None:
    """Zeroes `audio`'s non-finite samples and scales down float samples far above full scale, in
    place, and warns of those and of hard clipping, once per file: a NaN reaches every MFCC
    window around it, and hence the face's motion."""
    bad = ~np.isfinite(audio)
    count = int(bad.sum())
    if count:
        audio[bad] = 0.0
        _warn_once(path, "nan", f"{path}: {count} audio samples are not numbers (NaN or infinite); read as silence")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > OVER_FULL_SCALE:
        audio /= peak
        _warn_once(
            path,
            "scale",
            f"{path}: the audio reaches {peak:.3g} times full scale (float samples beyond +-1); scaled down to it",
        )
    elif len(audio) and np.mean(np.abs(audio) >= 0.999) >= HARD_CLIPPED_SHARE:
        share = float(np.mean(np.abs(audio) >= 0.999))
        _warn_once(
            path,
            "clipped",
            f"{path}: {100 * share:.1f}% of the audio samples are at full scale: the recording is hard clipped "
            "(distorted), which blurs the phones the mouth follows; record it at a lower level",
        )


def _warn_once(path: Path, problem: str, message: str) -> None:
    key = (str(path.resolve()), problem)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


STALE_TEMP_SECONDS = 600.0
"""A temporary file of `atomic_path` untouched this long was left by a killed job: writers touch
theirs as they go, so a live one is younger."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it only if the block finishes without error.

    So a killed or failed job never leaves a half-written file under the final name; the stale
    temporary files a killed one left for `path` go the next time it is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, STALE_TEMP_SECONDS)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def held_lock(path: str | os.PathLike, busy: str, cannot_write: str) -> Iterator[None]:
    """Holds the lock file `path` (made with its folders; an exclusive flock) while the block runs,
    and removes it at the end. An InputError `busy` where another process holds it, one starting
    with `cannot_write` where it cannot be made."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as err:
        raise InputError(f"{cannot_write} ({err.strerror}); give a directory you can write") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The file may have been removed by the run that held it just before we locked it.
            if os.fstat(handle.fileno()).st_ino != path.stat().st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            raise InputError(busy) from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked, so no one locks the removed file


def check_output(
    path: str | os.PathLike,
    suffix: str | None = None,
    inputs: Iterable[str | os.PathLike | None] = (),
    folder: bool = False,
) -> None:
    """Refuses, before any work, an output that could not be written or would destroy an input.

    `path` is a file ending in `suffix`, or a `folder` of outputs. An InputError when: the suffix
    is wrong; a folder is where the file goes (or a file where the folder goes, or above it); the
    nearest existing folder cannot be written in (tried with a temporary file: permission bits do
    not stop root, a read-only mount or /proc does); the file is one of the `inputs` (also through
    symlinks, hard links and `..`), or the output lies inside an input folder (an actor bundle).
    """
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise InputError(f"{path}: give the output a name ending in {suffix}")
    if not folder and path.is_dir():
        raise InputError(f"{path}: is a folder; give the output file's name (e.g. {path / ('out' + (suffix or ''))})")
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file, not a folder; give a folder to write the outputs into")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{path}: {existing} is a file, not a folder; give a path in a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise InputError(
            f"{path}: cannot write in {existing} ({err.strerror}); give a folder you can write to"
        ) from None
    for source in (Path(p) for p in inputs if p is not None):
        if source.is_dir():
            if path.resolve().is_relative_to(source.resolve()):
                raise InputError(f"{path}: inside the input folder {source}; write the output elsewhere")
        elif path.is_file() and source.exists() and os.path.samefile(path, source):
            raise InputError(f"{path}: is the input {source}; writing it would destroy it, give another output name")


def remove_stale_temps(path: str | os.PathLike, min_age: float) -> list[Path]:
    """Removes the temporary files `atomic_path(path)` makes that were last modified at least
    `min_age` seconds ago (a killed job's: SIGKILL skips the clean-up); returns them."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{8}}\.tmp{re.escape(path.suffix)}")
    now, removed = time.time(), []
    for tmp in path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"):
        with contextlib.suppress(FileNotFoundError):  # its own writer may finish meanwhile
            if pattern.fullmatch(tmp.name) and tmp.is_file() and now - tmp.stat().st_mtime >= min_age:
                tmp.unlink()
                removed.append(tmp)
    return removed


class VideoWriter:
    """Encodes RGB frames (+ optional mono float audio) into an H.264/AAC mp4, atomically.

    Use as a context manager: the file appears under its name only when the block ends without
    error. Audio is interleaved with the frames and cut at the last frame's end.

    Frames keep their exact size. Even sizes are H.264 4:2:0 (yuv420p: what every player and
    browser plays). 4:2:0 cannot hold an odd width or height (its chroma, and even the crop
    rectangle of the stream header, come in 2-pixel units), so odd sizes are H.264 4:4:4
    (yuv444p, High 4:4:4 profile): ffmpeg, PyAV, VLC and mpv decode it at the exact size; some
    hardware decoders, QuickTime and browsers do not play it (re-encode with an even size there).

        with VideoWriter("out.mp4", audio=speech) as writer:
            for frame in frames:
                writer.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = VIDEO_FPS,
        audio: np.ndarray | None = None,
        sample_rate: int = AUDIO_RATE,
        crf: int = 18,
    ):
        self.path = Path(path)
        self.fps = fps
        self.audio = None if audio is None else np.asarray(audio, np.float32).reshape(-1)
        self.sample_rate = sample_rate
        self.crf = crf
        self.frames_written = 0
        self._samples_written = 0
        self._atomic: contextlib.AbstractContextManager | None = None
        self._container = None
        self._vstream = None
        self._astream = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w", format="mp4")
        if self.audio is not None:
            self._astream = self._container.add_stream("aac", rate=self.sample_rate, layout="mono")
        return self

    def write(self, image: np.ndarray) -> None:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        height, width = image.shape[:2]
        if self._vstream is None:
            self._vstream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            self._vstream.width, self._vstream.height = width, height
            self._vstream.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
            self._vstream.options = {"crf": str(self.crf), "preset": "veryfast"}
        if (height, width) != (self._vstream.height, self._vstream.width):
            raise ValueError(
                f"frame {self.frames_written} is {height}x{width}, "
                f"the video is {self._vstream.height}x{self._vstream.width}"
            )
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames_written
        with self._writing():
            self._container.mux(self._vstream.encode(frame))
            self.frames_written += 1
            if self._astream is not None:
                end = min(len(self.audio), round(self.frames_written / self.fps * self.sample_rate))
                if end > self._samples_written:
                    chunk = av.AudioFrame.from_ndarray(
                        self.audio[self._samples_written : end].reshape(1, -1), format="flt", layout="mono"
                    )
                    chunk.sample_rate = self.sample_rate
                    chunk.pts = self._samples_written
                    self._container.mux(self._astream.encode(chunk))
                    self._samples_written = end

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (a full disk, a quota, a file size limit) as one line naming the output."""
        try:
            yield
        except OSError as err:
            raise InputError(
                f"{self.path}: could not write the video ({err.strerror or err}); free space on its disk "
                "or give an output elsewhere"
            ) from None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with self._writing():
                try:
                    if exc_type is None:
                        if self._vstream is None:
                            raise ValueError(f"{self.path}: no frames were written")
                        self._container.mux(self._vstream.encode(None))
                        if self._astream is not None:
                            self._container.mux(self._astream.encode(None))
                finally:
                    self._container.close()
        except BaseException as err:
            exc_type, exc, tb = type(err), err, err.__traceback__
            raise
        finally:
            # Renames the temporary file into place only on success.
            self._atomic.__exit__(exc_type, exc, tb)


def trim_video(path: str | os.PathLike, output: str | os.PathLike, first: int = 0, stop: int | None = None) -> int:
    """Writes frames [first, stop) of `path` at 25 fps (`iter_frames`' numbering; `stop` None: to
    the end) with the audio of the same span to the mp4 `output`, atomically; returns the frames
    written. Encoded losslessly (x264 crf 0), so the frames are the source's up to YUV rounding."""
    samples_per_frame = AUDIO_RATE / VIDEO_FPS
    audio = read_audio(path, AUDIO_RATE)[round(first * samples_per_frame) :]
    with VideoWriter(output, VIDEO_FPS, audio, AUDIO_RATE, crf=0) as writer:
        for t, frame in enumerate(iter_frames(path)):
            if stop is not None and t >= stop:
                break
            if t >= first:
                writer.write(frame)
    return writer.frames_written


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = VIDEO_FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = AUDIO_RATE,
    crf: int = 18,
) -> int:
    """Writes an iterable of RGB frames (a generator keeps memory flat); see `VideoWriter`.

    Returns the number of frames written.
    """
    with VideoWriter(path, fps, audio, sample_rate, crf) as writer:
        for image in frames:
            writer.write(image)
    return writer.frames_written
