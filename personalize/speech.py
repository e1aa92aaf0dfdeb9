"""Text to speech for an actor: the text of the command line, said in the actor's matched voice
or by a plugged-in engine (what `talkface generate --text` and `talkface speak` say)."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from scipy.io import wavfile

from audio2pose.tts import CommandSynthesizer, Speech
from audio2pose.voice import speak
from personalize.bundle import Actor
from recon3d.errors import InputError
from recon3d.video import AUDIO_RATE

log = logging.getLogger("talkface")


def read_text(text: str | None, text_file: Path | None) -> str | None:
    """The text of --text or --text-file (at most one), None when neither is given."""
    if text is not None and text_file is not None:
        raise InputError("give the text with --text or with --text-file, not both")
    if text_file is None:
        return text
    try:
        return text_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{text_file}: no such text file") from None
    except UnicodeDecodeError:
        raise InputError(f"{text_file}: not UTF-8 text; save it as UTF-8") from None
    except IsADirectoryError:
        raise InputError(f"{text_file}: a folder, not a text file; give the file with the text") from None
    except OSError as err:
        raise InputError(f"{text_file}: cannot read the text file ({err.strerror})") from None


def say_text(
    actor: Actor, text: str, tts_command: str | None, progress: bool, max_seconds: float | None = None
) -> Speech:
    """16 kHz speech of `text` in the actor's voice (or by the plugged-in engine), refused once it
    runs past `max_seconds`."""
    voice = actor.voice
    with tempfile.TemporaryDirectory(prefix="talkface-reference-") as tmp:
        engine = None
        if tts_command is not None:
            reference = None
            if len(voice.reference):
                reference = Path(tmp) / "reference.wav"
                wavfile.write(reference, AUDIO_RATE, voice.reference)
            engine = CommandSynthesizer(tts_command, reference)
        start = time.perf_counter()
        speech = speak(text, voice, engine, progress, max_seconds)
    log.info(
        "said %d characters in %.1f s of speech (%s) in %.1f s",
        len(text),
        len(speech.audio) / AUDIO_RATE,
        engine.name if engine else f"flite:{voice.base_voice}" + (" matched" if voice.target else ""),
        time.perf_counter() - start,
    )
    return speech
