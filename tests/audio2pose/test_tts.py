"""Text to speech: sentence chunking, text that cannot be said, Flite, plugged-in engines."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from audio2pose.tts import (
    ENGINE_TIMEOUT_BASE,
    ENGINE_TIMEOUT_PER_CHAR,
    CommandSynthesizer,
    FliteSynthesizer,
    check_text,
    engine_timeout,
    seconds_past,
    split_sentences,
    synthesize_text,
)
from recon3d.errors import InputError
from recon3d.video import AUDIO_RATE
from tests.conftest import requires_flite


def test_sentences_split_at_their_ends_and_long_ones_at_clauses_then_spaces():
    assert split_sentences("Hello there.  How are\nyou? Fine!") == ["Hello there.", "How are you?", "Fine!"]
    long = ", ".join(["one two three four"] * 30) + "."
    pieces = split_sentences(long, max_chars=100)
    assert all(len(p) <= 100 for p in pieces) and len(pieces) > 5 and " ".join(pieces) == long
    assert split_sentences("word " * 60, max_chars=100) == ["word " * 19 + "word"] * 3
    assert split_sentences("x" * 250, max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "text is empty"),
        ("  \n\t ", "text is empty"),
        ("!!! ... ?", "nothing in the text can be said"),
        ("日本語のテキスト", "nothing in the text can be said"),
    ],
)
def test_text_with_nothing_to_say_is_refused(text, message):
    with pytest.raises(InputError, match=message):
        check_text(text)


@requires_flite
def test_text_with_non_ascii_letters_is_said():
    speech = synthesize_text("Grüße aus Köln — a naïve café, 東京 and ½ a crêpe.", FliteSynthesizer())
    assert len(speech.audio) / AUDIO_RATE > 1.5 and speech.phones is not None


@requires_flite
def test_text_longer_than_the_limit_is_refused_once_its_speech_passes_it():
    said = []

    class Counting(FliteSynthesizer):
        def synthesize(self, text):
            said.append(text)
            return super().synthesize(text)

    # Far too long for the limit: refused before a word is said.
    with pytest.raises(InputError, match="longer than 3 s of speech .* even said at 30 characters a second"):
        synthesize_text("The boat is big. " * 5000, Counting(), max_seconds=3)
    assert said == []
    # Short enough to be said in time at 30 characters a second, but not as Flite says it.
    with pytest.raises(InputError, match="longer than 3 s of speech .* by its sentence"):
        synthesize_text("The boat is big. " * 5, Counting(), max_seconds=3)
    assert 0 < len(said) <= 5


@requires_flite
def test_a_sentence_lasts_as_long_as_speech_does():
    words = "The quick brown fox jumps over the lazy dog near the river bank".split()
    speech = synthesize_text(" ".join(words) + ".", FliteSynthesizer()).audio
    seconds = len(speech) / AUDIO_RATE
    assert len(words) / 5 < seconds < len(words) / 1.5  # 90 to 300 words a minute
    assert speech.dtype == np.float32 and np.abs(speech).max() <= 1


@requires_flite
def test_numbers_are_read_out_and_long_text_is_said_sentence_by_sentence():
    flite = FliteSynthesizer()
    digits = synthesize_text("I paid 1234 dollars.", flite).audio
    spelled = synthesize_text("I paid one thousand two hundred thirty four dollars.", flite).audio
    assert abs(len(digits) - len(spelled)) < 0.1 * len(spelled)
    one = synthesize_text("This is sentence number seven.", flite).audio
    many = synthesize_text(" ".join(f"This is sentence number {n}." for n in range(1, 13)), flite).audio
    assert 12 * 0.8 < len(many) / len(one) < 12 * 1.4


def test_an_unknown_flite_voice_is_refused():
    with pytest.raises(InputError, match="unknown flite voice 'bob'; choose one of rms, awb, slt, kal"):
        FliteSynthesizer("bob")


@requires_flite
def test_the_8_khz_kal_voice_is_said_at_16_khz_with_its_phones():
    speech = synthesize_text("Bob paid a man.", FliteSynthesizer("kal"))
    seconds = len(speech.audio) / AUDIO_RATE
    assert 0.6 < seconds < 3.0
    spoken = [p for p in speech.phones.phones if p.label != "SIL"]
    assert 0.7 * seconds < spoken[-1].end < seconds  # the timings are on the audio's clock (not 2x off)
    assert [p.label for p in spoken[:3]] == ["B", "AA", "B"]


def test_a_plugged_in_engine_is_run_with_its_placeholders(flite, tmp_path):
    reference = tmp_path / "actor.wav"
    reference.write_bytes(b"")
    engine = CommandSynthesizer(f"{flite} -voice slt -f {{text}} -o {{wav}}", reference)
    speech, rate, phones = engine.synthesize("Hello world.")
    assert phones is None and rate == AUDIO_RATE and len(speech) > 0.3 * rate and engine.name == f"command:{flite}"


@pytest.mark.parametrize(
    "command, message",
    [
        ("mytts --out speech.wav", "must say where the engine writes its audio with {wav}"),
        ("false {wav}", "failed (exit code 1)"),
        ("no-such-tts-engine {wav}", "no-such-tts-engine is not installed"),
        ("true {wav}", "wrote no audio"),
        ("mytts --speaker {reference} --out {wav}", "uses {reference} but this actor has no recorded speech"),
    ],
)
def test_a_broken_engine_fails_in_one_line(command, message):
    with pytest.raises(InputError, match=re.escape(message)):
        CommandSynthesizer(command).synthesize("hello")


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_an_engine_that_never_exits_is_stopped_with_its_children_in_one_line(tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the engine's text and wav files go
    pid_file = tmp_path / "sleep.pid"
    # The engine leaves a child of its own behind: the whole process group goes.
    engine = CommandSynthesizer(
        f"sh -c 'sleep 1000 & echo $! > {pid_file}; wait' {{wav}}", timeout_base=0.5, timeout_per_char=0.01
    )
    start = time.perf_counter()
    with pytest.raises(InputError) as refused:
        synthesize_text("Hello there.", engine)
    assert time.perf_counter() - start < 10
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("--tts-command sh: the speech command did not finish in 0.62 s and was stopped;")
    deadline = time.monotonic() + 5
    while process_alive(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(int(pid_file.read_text()))
    assert list(temp.iterdir()) == []


def test_the_engine_timeout_grows_with_the_text():
    assert engine_timeout("") == ENGINE_TIMEOUT_BASE
    assert engine_timeout("x" * 300) == ENGINE_TIMEOUT_BASE + 300 * ENGINE_TIMEOUT_PER_CHAR
    assert engine_timeout("x" * 10, base=1, per_char=0.5) == 6


def test_text_whose_speech_passes_the_limit_says_its_length_to_the_tenth_of_a_second(tmp_path):
    # An engine that says every sentence in 2.51 s (a tone: no English, but the limit comes first).
    script = tmp_path / "engine.py"
    script.write_text(
        "import sys\nimport numpy as np\nfrom scipy.io import wavfile\n"
        "tone = 0.3 * np.sin(np.arange(40160) * 2 * np.pi * 220 / 16000)\n"
        "wavfile.write(sys.argv[1], 16000, (tone * 32767).astype(np.int16))\n"
    )
    engine = CommandSynthesizer(f"{sys.executable} {script} {{wav}}")
    with pytest.raises(InputError) as refused:
        synthesize_text("Hello there.", engine, max_seconds=1)
    assert str(refused.value) == (
        "the text is longer than 1 s of speech (the limit): 2.5 s by its sentence 1 of 1; give less text, or raise "
        "the limit with --max-seconds"
    )
    # Its pause after the last sentence is not said: 2.51 s of speech is within a limit of 2.6 s.
    assert len(synthesize_text("Hello there.", engine, max_seconds=2.6).audio) == 40160


def test_seconds_past_a_limit_show_that_they_pass_it():
    assert [seconds_past(s, 1) for s in (2.51, 1.04, 1.004, 1.0004)] == ["2.5", "1.04", "1.004", "1.000"]
