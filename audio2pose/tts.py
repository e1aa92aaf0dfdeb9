"""Text to speech: text -> sentences -> a synthesizer's speech, 16 kHz mono.

Engines implement `SpeechSynthesizer`. The built-in one is CMU Flite (`FliteSynthesizer`), run as
the `flite` program (Debian/Ubuntu `apt-get install flite`, Homebrew `brew install flite`): of the
offline engines checked here it is the one an offline recogniser understands best (PocketSphinx
word error rate on ten Harvard sentences: flite rms 0.22, awb 0.25, slt 0.40, kal 0.79; espeak-ng
0.87-0.97), and it expands numbers, currency, percentages, ordinals and years itself. Its
voices are then matched to the actor's (`audio2pose.voice`).

A neural voice-cloning engine the user has installed plugs in as a command
(`CommandSynthesizer`), e.g. `--tts-command "mytts --speaker {reference} --in {text} --out {wav}"`;
it gets the actor's recorded speech as `{reference}` and its output is used as it comes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from audio2pose.phones import PhoneTimings, flite_phones
from recon3d.errors import InputError
from recon3d.video import AUDIO_RATE, read_audio

FLITE_VOICES = ("rms", "awb", "slt")
"""Flite's built-in 16 kHz voices, most intelligible first: those voice matching starts from."""
FLITE_ALL_VOICES = (*FLITE_VOICES, "kal")
"""... and its 8 kHz kal, far less clear, but another voice to drive a mouth with."""
MAX_SENTENCE_CHARS = 300
"""Longer sentences are split at clause punctuation, then at spaces (one synthesizer call each)."""
SENTENCE_PAUSE = 0.15
"""Seconds of silence added between sentences (each engine call ends its own sentence too)."""
ENGINE_TIMEOUT_BASE = 300.0
"""Seconds any engine call may take, plus `ENGINE_TIMEOUT_PER_CHAR` per character of its sentence:
an engine that never exits (waiting on a prompt, a lock, a device) would otherwise hang `generate
--text` for good. Generous on purpose: a plugged-in neural engine may load its model for every
call (download it, on a first run), and Flite needs well under a second."""
ENGINE_TIMEOUT_PER_CHAR = 1.0
"""Seconds per character of the sentence an engine call may take on top of the base: about 14
characters are a second of speech, which a neural engine on a CPU may take several seconds to say."""


class SpeechSynthesizer(Protocol):
    """Anything that says one sentence of English text."""

    @property
    def name(self) -> str:
        """Engine and voice (recorded with what it made, e.g. `flite:rms`)."""

    def synthesize(self, text: str) -> tuple[np.ndarray, int, PhoneTimings | None]:
        """`(N,)` float samples in [-1, 1], their sample rate, and the phones' timings where the
        engine reports them."""


def engine_timeout(text: str, base: float = ENGINE_TIMEOUT_BASE, per_char: float = ENGINE_TIMEOUT_PER_CHAR) -> float:
    """Seconds an engine may take to say `text` (see `ENGINE_TIMEOUT_BASE`)."""
    return base + per_char * len(text)


def _run(argv: list[str], what: str, timeout: float) -> str:
    """The program's standard output. It runs in a process group of its own, killed whole (the
    engine's own children too) when it takes longer than `timeout` seconds, or on Ctrl-C."""
    try:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    except FileNotFoundError:
        raise InputError(f"{what}: {argv[0]} is not installed") from None
    except OSError as err:
        raise InputError(f"{what}: cannot run {argv[0]} ({err.strerror})") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise InputError(
            f"{what}: the speech command did not finish in {timeout:g} s and was stopped; check that it "
            "exits by itself once it has written its audio (no prompt, no server left running)"
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    if process.returncode != 0:
        detail = (stderr or stdout).strip().splitlines()
        raise InputError(f"{what} failed (exit code {process.returncode}): {detail[-1] if detail else 'no message'}")
    return stdout


def _kill_group(process: subprocess.Popen) -> None:
    """Kills the process and every process of its group, and reaps it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a child that left the group still holds its pipes: give up on them
        process.kill()
        process.wait()


def _read_speech(path: Path, what: str) -> tuple[np.ndarray, int]:
    """What an engine wrote, as 16 kHz mono (any format and rate PyAV reads)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise InputError(f"{what} wrote no audio to {path}")
    return read_audio(path, AUDIO_RATE), AUDIO_RATE


@dataclass(frozen=True)
class FliteSynthesizer:
    """CMU Flite with one of its built-in voices (`FLITE_VOICES`)."""

    voice: str = "rms"
    program: str = "flite"
    timeout_base: float = ENGINE_TIMEOUT_BASE
    timeout_per_char: float = ENGINE_TIMEOUT_PER_CHAR

    def __post_init__(self) -> None:
        if self.voice not in FLITE_ALL_VOICES:
            raise InputError(f"unknown flite voice {self.voice!r}; choose one of {', '.join(FLITE_ALL_VOICES)}")

    @property
    def name(self) -> str:
        return f"flite:{self.voice}"

    def check_installed(self) -> None:
        if shutil.which(self.program) is None:
            raise InputError(
                "speech synthesis needs CMU Flite: install it (`sudo apt-get install flite`, "
                "`brew install flite`) or plug in your own engine with --tts-command"
            )

    def synthesize(self, text: str) -> tuple[np.ndarray, int, PhoneTimings]:
        self.check_installed()
        with tempfile.TemporaryDirectory(prefix="talkface-tts-") as tmp:
            text_file, wav = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
            text_file.write_text(text, encoding="utf-8")
            argv = [self.program, "-voice", self.voice, "-f", str(text_file), "-o", str(wav), "-psdur"]
            psdur = _run(argv, "flite", engine_timeout(text, self.timeout_base, self.timeout_per_char))
            return *_read_speech(wav, "flite"), flite_phones(psdur)


@dataclass(frozen=True)
class CommandSynthesizer:
    """A user-installed engine run as a command line (no shell). Placeholders: `{text}` a UTF-8
    file with the sentence, `{wav}` where it must write its audio, `{reference}` a wav of the
    actor's own speech (for voice-cloning engines)."""

    command: str
    reference: Path | None = None
    timeout_base: float = ENGINE_TIMEOUT_BASE
    timeout_per_char: float = ENGINE_TIMEOUT_PER_CHAR

    def __post_init__(self) -> None:
        if "{wav}" not in self.command:
            raise InputError(f"--tts-command must say where the engine writes its audio with {{wav}}: {self.command!r}")
        if "{reference}" in self.command and self.reference is None:
            raise InputError("--tts-command uses {reference} but this actor has no recorded speech")

    @property
    def name(self) -> str:
        return f"command:{shlex.split(self.command)[0]}"

    def synthesize(self, text: str) -> tuple[np.ndarray, int, None]:
        with tempfile.TemporaryDirectory(prefix="talkface-tts-") as tmp:
            text_file, wav = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
            text_file.write_text(text, encoding="utf-8")
            values = {"text": str(text_file), "wav": str(wav), "reference": str(self.reference)}
            argv = [
                re.sub(r"\{(text|wav|reference)\}", lambda m: values[m.group(1)], arg)
                for arg in shlex.split(self.command)
            ]
            _run(argv, f"--tts-command {argv[0]}", engine_timeout(text, self.timeout_base, self.timeout_per_char))
            return *_read_speech(wav, f"--tts-command {argv[0]}"), None


def check_text(text: str) -> str:
    """The text with its whitespace collapsed; an `InputError` when there is nothing to say."""
    text = " ".join(text.split())
    if not text:
        raise InputError("the text is empty; give the words to say with --text or --text-file")
    if not re.search(r"[A-Za-z0-9]", text):
        raise InputError(
            f"nothing in the text can be said by an English synthesizer: {text[:60]!r}; "
            "give words in English letters or numbers"
        )
    return text


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences (ending at . ! ? followed by a space), long ones split at , ; : then at spaces
    into pieces of at most `max_chars`. Abbreviations like "Dr." may end a piece: Flite reads
    each piece the same either way, only the pause differs."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", check_text(text)) if s]
    pieces: list[str] = []
    for sentence in sentences:
        pieces.extend(_split_long(sentence, max_chars))
    return pieces


def _split_long(sentence: str, max_chars: int) -> Iterable[str]:
    if len(sentence) <= max_chars:
        yield sentence
        return
    for separator in (r"(?<=[,;:])\s+", r"\s+"):
        parts = re.split(separator, sentence)
        if len(parts) > 1:
            piece = ""
            for part in parts:
                if piece and len(piece) + 1 + len(part) > max_chars:
                    yield from _split_long(piece, max_chars)
                    piece = part
                else:
                    piece = f"{piece} {part}" if piece else part
            yield from _split_long(piece, max_chars)
            return
    yield from (sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars))


@dataclass(frozen=True)
class Speech:
    """Synthesized speech: 16 kHz mono samples, the text, and the phones' timings where the
    engine reports them (Flite does; a plugged-in engine's speech gets them by alignment)."""

    audio: np.ndarray
    text: str
    phones: PhoneTimings | None = None


def sentence_speech(synthesizer: SpeechSynthesizer, sentence: str) -> Speech:
    """One sentence's speech, float32 at 16 kHz."""
    samples, rate, phones = synthesizer.synthesize(sentence)
    if rate != AUDIO_RATE:
        samples = resample_poly(samples, AUDIO_RATE, rate)
    return Speech(samples.astype(np.float32), sentence, phones)


def seconds_past(seconds: float, limit: float) -> str:
    """`seconds`, a length found to pass `limit`, with one decimal, or more where one decimal would
    not show it passing: "2.5" for 2.51 s (not "3"), "1.04" for 1.04 s against a limit of 1 s."""
    for digits in (1, 2):
        text = f"{seconds:.{digits}f}"
        if float(text) > limit:
            return text
    return f"{seconds:.3f}"


MAX_CHARS_PER_SECOND = 30
"""Characters of text no speech says faster (Flite says about 14 a second, fast speakers 20): text
longer than the limit at this rate is refused before any of it is said."""


def synthesize_text(
    text: str,
    synthesizer: SpeechSynthesizer,
    progress: bool = False,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    max_seconds: float | None = None,
) -> Speech:
    """Speech for any length of text: a synthesizer call per sentence, each passed through
    `transform` (voice matching, which keeps the timing) when given. Text whose speech runs past
    `max_seconds` is refused as soon as it does (not after hours of it are said)."""
    if max_seconds is not None and len(text) > max_seconds * MAX_CHARS_PER_SECOND:
        raise InputError(
            f"the text ({len(text)} characters) is longer than {max_seconds:g} s of speech (the limit) even said "
            f"at {MAX_CHARS_PER_SECOND} characters a second; give less text, or raise the limit with --max-seconds"
        )
    pieces = split_sentences(text)
    pause = np.zeros(int(SENTENCE_PAUSE * AUDIO_RATE), np.float32)
    chunks: list[np.ndarray] = []
    timings: list[tuple[PhoneTimings, float]] = []
    offset = 0
    for piece in tqdm(pieces, desc="speak", unit="sentence", disable=not progress or len(pieces) < 2, leave=False):
        sentence = sentence_speech(synthesizer, piece)
        if sentence.phones is not None:
            timings.append((sentence.phones, offset / AUDIO_RATE))
        chunks.extend([sentence.audio if transform is None else transform(sentence.audio), pause])
        said = (offset + len(sentence.audio)) / AUDIO_RATE  # the pause after the last sentence is dropped
        offset += len(sentence.audio) + len(pause)
        if max_seconds is not None and said > max_seconds:
            raise InputError(
                f"the text is longer than {max_seconds:g} s of speech (the limit): {seconds_past(said, max_seconds)} s "
                f"by its sentence {len(chunks) // 2} of {len(pieces)}; give less text, or raise the limit with "
                "--max-seconds"
            )
    audio = np.concatenate(chunks[:-1])
    if not np.any(np.abs(audio) > 1e-3):
        raise InputError(f"{synthesizer.name} said nothing for the text {text[:60]!r}; check that it is English words")
    phones = PhoneTimings.concatenate(timings, "synthesizer") if len(timings) == len(pieces) else None
    return Speech(audio, " ".join(pieces), phones)
