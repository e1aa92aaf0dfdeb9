"""Phone timings of speech: which CMU phone sounds when, in seconds.

Three sources, best first (`speech_phones` picks):
- the synthesizer's own timings, exact, for speech made from text (`flite -psdur`, `flite_phones`);
- forced alignment of a transcript (`align_words`): PocketSphinx's bundled US-English acoustic
  model and CMU dictionary place the transcript's phones on the audio (Viterbi over the word
  sequence, then a second pass over its phones);
- for audio alone, words decoded with the bundled language model and then aligned as above; where
  nothing is decoded, PocketSphinx's phone-loop recogniser (`phone_loop`, also the phone columns of
  `audio2pose.features`).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pocketsphinx import Decoder, get_model_path
from tqdm import tqdm

from recon3d.video import AUDIO_RATE

log = logging.getLogger("talkface")

PHONES = (
    "AA",
    "AE",
    "AH",
    "AO",
    "AW",
    "AY",
    "B",
    "CH",
    "D",
    "DH",
    "EH",
    "ER",
    "EY",
    "F",
    "G",
    "HH",
    "IH",
    "IY",
    "JH",
    "K",
    "L",
    "M",
    "N",
    "NG",
    "OW",
    "OY",
    "P",
    "R",
    "S",
    "SH",
    "T",
    "TH",
    "UH",
    "UW",
    "V",
    "W",
    "Y",
    "Z",
    "ZH",
)
"""The CMU phone set of PocketSphinx's US-English model; anything else is silence ("SIL")."""
SILENCE = "SIL"
SPHINX_FRAME = 0.010
"""Seconds per PocketSphinx frame."""
PIECE_SECONDS = 30.0
"""Longest speech decoded as one utterance: PocketSphinx's search takes memory and time that grow
faster than the utterance (10 minutes at once: 164 s and 370 MB; in 30 s pieces: see docs/benchmarks.md)."""
FLITE_PHONES = {"ax": "AH", "pau": SILENCE}
"""Flite's US phones are CMU's in lower case, but for schwa and the pause."""
TRANSCRIPT_MATCH = 0.5
"""Least share of the words recognised in speech that its transcript must hold, and of the
transcript's words that must be recognised, for it to be taken as what the speech says
(`transcript_match`). Measured on pysptk's ARCTIC sample (its prompt), two of the shared speech
files (the recognised words, the evident mishearings corrected: "michigan" for "magician") and
two Flite sentences in two voices: their own transcripts score 0.75-1 (PocketSphinx mishears a
word in four to eight: "blur the sheep" for "glue the sheet"), the ARCTIC one with two words left
out 0.82, with its second half wrong 0.64; other sentences' words (17 pairs, with the third
shared file's too) 0-0.25."""


@dataclass(frozen=True)
class Phone:
    """One phone: a `PHONES` label or `SILENCE`, from `start` to `end` seconds."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class PhoneTimings:
    phones: tuple[Phone, ...]
    source: str
    """Where they come from: "synthesizer", "transcript", "decoded" or "phone-loop"."""

    def shifted(self, seconds: float) -> PhoneTimings:
        return PhoneTimings(tuple(Phone(p.label, p.start + seconds, p.end + seconds) for p in self.phones), self.source)

    @staticmethod
    def concatenate(parts: list[tuple[PhoneTimings, float]], source: str) -> PhoneTimings:
        """Timings of pieces of speech played one after the other, each with its start in seconds."""
        return PhoneTimings(tuple(p for timings, offset in parts for p in timings.shifted(offset).phones), source)


def _label(name: str) -> str:
    name = re.sub(r"\d", "", name).upper()  # CMU stress digits
    return name if name in PHONES else SILENCE


def flite_phones(psdur: str) -> PhoneTimings:
    """What `flite -psdur` prints ("pau:0.142 b:0.215 ...", each phone with its end time)."""
    phones, start = [], 0.0
    for item in psdur.split():
        name, _, end = item.rpartition(":")
        if not name:
            continue
        end_time = float(end)
        phones.append(Phone(FLITE_PHONES.get(name, None) or _label(name), start, end_time))
        start = end_time
    return PhoneTimings(tuple(phones), "synthesizer")


def _model_dir() -> Path:
    return Path(get_model_path()) / "en-us"


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(np.asarray(audio, np.float64), -1, 1) * 32767).astype(np.int16).tobytes()


def _decode(decoder: Decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _word_decoder() -> Decoder:
    # A new decoder per utterance: one kept across calls adapts its running cepstral mean to what
    # it decoded before, so the same speech would get other results after other speech.
    model = _model_dir()
    # FATAL: a failed alignment is reported by returning None, not on stderr.
    return Decoder(
        hmm=str(model / "en-us"),
        lm=str(model / "en-us.lm.bin"),
        dict=str(model / "cmudict-en-us.dict"),
        samprate=AUDIO_RATE,
        loglevel="FATAL",
    )


def phone_loop_decoder() -> Decoder:
    """PocketSphinx's phone recogniser (no words: a phone language model)."""
    model = _model_dir()
    return Decoder(
        hmm=str(model / "en-us"),
        allphone=str(model / "en-us-phone.lm.bin"),
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
        samprate=AUDIO_RATE,
        loglevel="ERROR",
    )


def phone_loop(audio: np.ndarray) -> PhoneTimings:
    """Phones of 16 kHz audio by the phone-loop recogniser."""
    decoder = phone_loop_decoder()
    _decode(decoder, _pcm(audio))
    return PhoneTimings(
        tuple(
            Phone(_label(s.word), s.start_frame * SPHINX_FRAME, (s.end_frame + 1) * SPHINX_FRAME) for s in decoder.seg()
        ),
        "phone-loop",
    )


def transcript_words(text: str, decoder: Decoder | None = None) -> list[str]:
    """The transcript's words as the CMU dictionary spells them (lower case, letters and
    apostrophes); words it does not know are dropped (their sounds then go to their neighbours)."""
    decoder = decoder or _word_decoder()
    words = re.findall(r"[a-z']+", text.lower().replace("’", "'"))
    return [w for w in (w.strip("'") for w in words) if w and decoder.lookup_word(w) is not None]


def decode_words(audio: np.ndarray) -> list[str]:
    """Words PocketSphinx's bundled language model hears in 16 kHz audio (fillers dropped)."""
    decoder = _word_decoder()
    _decode(decoder, _pcm(audio))
    hyp = decoder.hyp()
    return [] if hyp is None else hyp.hypstr.split()


def align_words(audio: np.ndarray, words: list[str], source: str = "transcript") -> PhoneTimings | None:
    """Phones of `words` force-aligned to 16 kHz audio; None when the words cannot be aligned
    (none given, or the search finds no path through them)."""
    if not words:
        return None
    decoder = _word_decoder()
    pcm = _pcm(audio)
    try:
        decoder.set_align_text(" ".join(words))
        _decode(decoder, pcm)
        decoder.set_alignment()
        _decode(decoder, pcm)
    except RuntimeError:
        return None
    alignment = decoder.get_alignment()
    if alignment is None:
        return None
    phones = [
        Phone(_label(phone.name), phone.start * SPHINX_FRAME, (phone.start + phone.duration) * SPHINX_FRAME)
        for word in alignment
        for phone in word
    ]
    if not phones:
        return None
    # The alignment covers the audio from its first frame: what precedes the first word's phone is
    # folded into it. Where the audio is silent there, it is silence.
    return PhoneTimings(tuple(_split_leading_silence(phones, audio)), source)


def _split_leading_silence(phones: list[Phone], audio: np.ndarray, threshold_db: float = -35.0) -> list[Phone]:
    first = phones[0]
    if first.label == SILENCE:
        return phones
    hop = int(SPHINX_FRAME * AUDIO_RATE)
    frames = np.asarray(audio[: int(first.end * AUDIO_RATE)], np.float64)
    if len(frames) < hop:
        return phones
    energy = np.sqrt(np.mean(frames[: len(frames) // hop * hop].reshape(-1, hop) ** 2, 1) + 1e-12)
    loud = np.nonzero(
        20 * np.log10(energy / (np.sqrt(np.mean(np.asarray(audio, np.float64) ** 2)) + 1e-12)) > threshold_db
    )[0]
    onset = (loud[0] if len(loud) else 0) * SPHINX_FRAME
    if onset <= first.start + 2 * SPHINX_FRAME or onset >= first.end - 2 * SPHINX_FRAME:
        return phones
    return [Phone(SILENCE, first.start, onset), Phone(first.label, onset, first.end), *phones[1:]]


def speech_pieces(audio: np.ndarray, seconds: float | None = None) -> list[tuple[int, int]]:
    """`(start, end)` samples of pieces of 16 kHz speech at most `seconds` (`PIECE_SECONDS`) long,
    that together are all of it: each cut at the quietest 100 ms of the piece's second half (a
    pause, so that no word is split), on PocketSphinx's 10 ms frame grid. Speech up to `seconds`
    is one piece."""
    hop, longest = round(SPHINX_FRAME * AUDIO_RATE), round((seconds or PIECE_SECONDS) * AUDIO_RATE)
    pieces, start = [], 0
    while len(audio) - start > longest:
        half = start + longest // 2
        frames = np.asarray(audio[half : start + longest], np.float64)
        energy = np.square(frames[: len(frames) // hop * hop].reshape(-1, hop)).mean(1)
        quiet = np.convolve(energy, np.ones(10), "same")  # 100 ms around each 10 ms frame
        cut = half + int(np.argmin(quiet)) * hop
        pieces.append((start, cut))
        start = cut
    return [*pieces, (start, len(audio))]


@dataclass(frozen=True)
class TranscriptMatch:
    """How well a transcript's words agree with the words recognised in (a first part of) its speech."""

    found: int
    """Recognised words that are in the transcript."""
    recognised: int
    """Words recognised (in the first `seconds`)."""
    said: int | None
    """Words of the transcript that are recognised; None where not all the speech was recognised."""
    words: int
    """Words of the transcript (in the part that was recognised, in proportion)."""
    seconds: float
    """Seconds of speech recognised (from its start)."""

    @property
    def score(self) -> float:
        """The share of the recognised words in the transcript, or the share of its words that
        were recognised if lower (`TRANSCRIPT_MATCH`); 1 where nothing was recognised."""
        shares = [self.found / self.recognised] if self.recognised else []
        if self.recognised and self.said is not None and self.words:
            shares.append(self.said / self.words)
        return min(shares, default=1.0)

    def describe(self) -> str:
        if self.said is None:
            return (
                f"{self.found} of the {self.recognised} words recognised in its first {self.seconds:.1f} s "
                "are in the transcript"
            )
        return (
            f"{self.found} of the {self.recognised} words recognised in it are in the transcript, and "
            f"{self.said} of the transcript's {self.words} were recognised"
        )


def transcript_match(words: list[str], heard: list[str], seconds: float, total_seconds: float) -> TranscriptMatch:
    """How well transcript `words` (`transcript_words`) match the words `heard` in the first
    `seconds` of `total_seconds` of speech: against the transcript's words in proportion (and a
    quarter more) when that is only a part of the speech."""
    whole = seconds >= total_seconds - 1e-6
    if not whole:
        words = words[: math.ceil(len(words) * seconds / total_seconds * 1.25) + 2]
    vocabulary, recognised = set(words), set(heard)
    return TranscriptMatch(
        found=sum(word in vocabulary for word in heard),
        recognised=len(heard),
        said=sum(word in recognised for word in words) if whole else None,
        words=len(words),
        seconds=seconds,
    )


def _warn_unmatched(match: TranscriptMatch, aligned: bool) -> None:
    """One warning line when the transcript does not seem to be what the speech says."""
    if match.score < TRANSCRIPT_MATCH:
        follows = "the transcript's words as aligned to it" if aligned else "the recognised words (it did not align)"
        log.warning(
            "the transcript does not seem to match the speech: %s; the mouth follows %s: give the words "
            "the speech says, or leave the transcript out",
            match.describe(),
            follows,
        )


def speech_phones(audio: np.ndarray, transcript: str | None = None, progress: bool = False) -> PhoneTimings:
    """Phone timings of 16 kHz speech: its transcript aligned when given (and alignable), else
    decoded words aligned, else the phone loop. Without a transcript, speech longer than
    `PIECE_SECONDS` is decoded a piece at a time (`speech_pieces`; a bar with `progress`). A
    transcript whose words do not match those recognised in the speech (`transcript_match`; the
    first piece's) is warned of."""
    pieces = speech_pieces(audio)
    total = len(audio) / AUDIO_RATE
    if transcript is not None:
        # One utterance: where the transcript's words fall in a long recording is what the
        # alignment finds, so it cannot be cut before.
        words = transcript_words(transcript)
        timings = align_words(audio, words, "transcript")
        if timings is not None:
            start, end = pieces[0]
            heard = decode_words(audio[start:end])
            _warn_unmatched(transcript_match(words, heard, (end - start) / AUDIO_RATE, total), aligned=True)
            return timings
        log.info("the transcript could not be aligned to the speech; the mouth follows the recognised words")
    parts = []
    for k, (start, end) in enumerate(
        tqdm(pieces, desc="phones", unit="piece", disable=not progress or len(pieces) == 1)
    ):
        piece = audio[start:end]
        heard = decode_words(piece)
        if k == 0 and transcript is not None:
            _warn_unmatched(transcript_match(words, heard, (end - start) / AUDIO_RATE, total), aligned=False)
        timings = align_words(piece, heard, "decoded")
        parts.append((timings if timings is not None else phone_loop(piece), start / AUDIO_RATE))
    decoded = any(timings.source == "decoded" for timings, _ in parts)
    return PhoneTimings.concatenate(parts, "decoded" if decoded else "phone-loop")
