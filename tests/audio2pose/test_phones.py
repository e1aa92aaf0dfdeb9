"""Phone timings of speech given with its transcript: a transcript of other words is warned of."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from audio2pose.phones import TRANSCRIPT_MATCH, speech_phones, transcript_match, transcript_words
from personalize.samples import sample_speech
from recon3d.video import AUDIO_RATE, read_audio

ARCTIC_A0007 = "And you always want to see it in the superlative degree."
"""What pysptk's ARCTIC sample says (CMU ARCTIC prompt a0007)."""


@pytest.fixture(scope="module")
def arctic() -> np.ndarray:
    return read_audio(sample_speech(), AUDIO_RATE)


def warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_transcript_match_counts_words_both_ways():
    heard = "and you always want to see it in the superlative degree".split()
    right = transcript_match(transcript_words(ARCTIC_A0007), heard, 4.0, 4.0)
    assert (right.found, right.recognised, right.said, right.words, right.score) == (11, 11, 11, 11, 1.0)
    short = transcript_match(["hello"], heard, 4.0, 4.0)
    assert short.score == 0.0  # none of the speech's words, however few its own
    # A first part of long speech is held against the transcript's words in proportion.
    part = transcript_match(["hello"] * 40 + heard, heard, 30.0, 120.0)
    assert part.said is None and part.words == 18 and part.score == 0.0  # 51 words * 30 / 120 * 1.25, + 2
    assert transcript_match(transcript_words(ARCTIC_A0007), [], 4.0, 4.0).score == 1.0  # nothing to judge by


@pytest.mark.slow
@pytest.mark.parametrize(
    "transcript, follows",
    [
        # Aligns (PocketSphinx finds a path through any words), but says something else.
        ("Glue the sheet to the dark blue background.", "the transcript's words as aligned to it"),
        ("Hello there.", "the transcript's words as aligned to it"),
        # Cannot be aligned at all: the recognised words are used.
        ("The quick brown fox jumps over the lazy dog by the river.", r"the recognised words \(it did not align\)"),
    ],
)
def test_a_transcript_of_other_words_is_warned_of_in_one_line(arctic, caplog, transcript, follows):
    with caplog.at_level(logging.INFO, logger="talkface"):
        timings = speech_phones(arctic, transcript)
    assert timings.phones
    [warning] = warnings(caplog)
    assert re.fullmatch(
        r"the transcript does not seem to match the speech: (\d+) of the 11 words recognised in it are in the "
        r"transcript, and \d+ of the transcript's \d+ were recognised; the mouth follows " + follows + ": give the "
        "words the speech says, or leave the transcript out",
        warning,
    )
    assert int(re.search(r"(\d+) of the 11", warning).group(1)) < TRANSCRIPT_MATCH * 11


@pytest.mark.slow
@pytest.mark.parametrize(
    "transcript",
    [
        ARCTIC_A0007,
        "you always want to see it in the superlative",  # two words left out
        "And you always wanted to see it in a superlative degree.",  # two misheard
    ],
)
def test_the_speechs_own_transcript_is_not_warned_of(arctic, caplog, transcript):
    with caplog.at_level(logging.INFO, logger="talkface"):
        timings = speech_phones(arctic, transcript)
    assert timings.source == "transcript" and warnings(caplog) == []
