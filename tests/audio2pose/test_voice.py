"""Voice matching on real speech: statistics move to the actor's, the model survives a bundle."""

from __future__ import annotations

import numpy as np
import pytest

from audio2pose.metrics import word_error_rate
from audio2pose.tts import FliteSynthesizer, sentence_speech, split_sentences
from audio2pose.voice import REFERENCE_TEXT, VoiceModel, convert, learn_voice, speak, voice_stats
from personalize.samples import sample_speech
from recon3d.errors import InputError
from recon3d.video import AUDIO_RATE, read_audio

SENTENCE = "Glue the sheet to the dark blue background."


@pytest.fixture(scope="module")
def actor_speech(flite) -> np.ndarray:
    """A real recording: CMU ARCTIC's awb (a man, Scottish English; 4 s)."""
    return read_audio(sample_speech(), AUDIO_RATE)


def test_word_error_rate_counts_edits_over_reference_words():
    assert word_error_rate("the birch canoe", "The birch canoe.") == 0
    assert word_error_rate("the birch canoe slid", "the bird canoe") == 0.5
    assert word_error_rate("a b", "") == 1 and word_error_rate("a", "a b c") == 2


def test_matching_moves_pitch_and_timbre_to_the_actor(actor_speech):
    # From the female voice to a man's: a long way to go in both.
    passage = [sentence_speech(FliteSynthesizer("slt"), s).audio for s in split_sentences(REFERENCE_TEXT)]
    source, target = voice_stats(passage), voice_stats([actor_speech], recorded=True)
    said = sentence_speech(FliteSynthesizer("slt"), SENTENCE).audio
    before = voice_stats([said])
    after = voice_stats([convert(said, source, target)])
    assert abs(after.log_f0_mean - target.log_f0_mean) < 0.25 * abs(before.log_f0_mean - target.log_f0_mean)
    assert abs(after.log_f0_std - target.log_f0_std) < abs(before.log_f0_std - target.log_f0_std)
    distance = lambda stats: np.linalg.norm(stats.cepstrum_mean[1:] - target.cepstrum_mean[1:])  # noqa: E731
    assert distance(after) < 0.6 * distance(before)


@pytest.mark.slow
def test_the_learned_voice_is_chosen_by_measure_saved_and_loaded(actor_speech, tmp_path):
    model, candidates = learn_voice(actor_speech)
    assert len(candidates) == 9 and [c.similarity for c in candidates] == sorted(
        (c.similarity for c in candidates), reverse=True
    )
    chosen = next(c for c in candidates if (c.voice, c.spread) == (model.base_voice, model.spread))
    assert chosen.word_error_rate is not None
    # A man's voice: matched from one of flite's men (awb was built from this very speaker), at his pitch.
    assert model.base_voice in ("rms", "awb") and 80 < model.target.f0_hz < 160
    model.save(tmp_path / "voice.npz")
    loaded = VoiceModel.load(tmp_path / "voice.npz")
    assert (loaded.base_voice, loaded.spread, loaded.config) == (model.base_voice, model.spread, model.config)
    np.testing.assert_array_equal(loaded.target.cepstrum_std, model.target.cepstrum_std)
    np.testing.assert_array_equal(loaded.reference, model.reference)
    speech = speak(SENTENCE, loaded).audio
    np.testing.assert_array_equal(speech, speak(SENTENCE, model).audio)
    said = voice_stats([speech])
    unmatched = voice_stats([sentence_speech(FliteSynthesizer(model.base_voice), SENTENCE).audio])
    # Flite's men speak at about his height already, more monotonously: the intonation widens.
    assert abs(said.log_f0_std - model.target.log_f0_std) < 0.5 * abs(unmatched.log_f0_std - model.target.log_f0_std)


@pytest.mark.slow
def test_without_speech_the_default_voice_speaks_unmatched(flite, tmp_path):
    model, candidates = learn_voice(None)
    assert model.target is None and candidates == [] and model.base_voice == "rms"
    model.save(tmp_path / "voice.npz")
    speech = speak(SENTENCE, VoiceModel.load(tmp_path / "voice.npz")).audio
    np.testing.assert_allclose(speech, sentence_speech(FliteSynthesizer("rms"), SENTENCE).audio, atol=1e-6)


@pytest.mark.slow
def test_too_little_voiced_speech_is_refused(flite):
    with pytest.raises(InputError, match="voiced speech found"):
        learn_voice(np.zeros(AUDIO_RATE * 2, np.float32))
