"""Voice matching: a synthesizer's speech moved toward the actor's voice with the WORLD vocoder.

This is voice *matching*, not neural cloning: speech is analysed into F0, spectral envelope and
aperiodicity (WORLD: DIO + StoneMask or Harvest, CheapTrick, D4C; `pyworld`), and two things about it are
moved to the actor's, measured on their recorded speech at `personalize` time:

- pitch: log F0 of voiced frames is standardised with the synthesizer voice's mean and spread and
  given the actor's (so the intonation's shape stays, at the actor's height and range);
- timbre: the mel-cepstrum of the spectral envelope (WORLD's own coding, `num_cepstra`
  coefficients; c0, the loudness, left alone) gets the actor's per-coefficient mean over voiced
  frames (their average vocal-tract shape, their microphone and room), and its spread is scaled
  by (actor's / voice's) ** `spread`.

Which Flite voice speaks, and how much of the cepstral spread is matched (`SPREADS`), is
measured per actor (`learn_voice`): each of the nine candidates reads the Rainbow Passage, is
matched, and is scored by speaker similarity to the actor's speech (GE2E embeddings,
`audio2pose.metrics`); the most similar one whose word error rate on the passage is within
`max_wer_increase` of that Flite voice's own, unmatched, is kept. (No one voice and setting won on
every actor of ../shared/data/clips.) Rhythm, accent and everything a global statistic cannot
hold stay the synthesizer's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pyworld
from tqdm import tqdm

from audio2pose.metrics import speaker_embedding, transcribe, word_error_rate
from audio2pose.tts import (
    FLITE_VOICES,
    FliteSynthesizer,
    Speech,
    SpeechSynthesizer,
    sentence_speech,
    split_sentences,
    synthesize_text,
)
from recon3d.errors import InputError
from recon3d.video import AUDIO_RATE, atomic_path

REFERENCE_TEXT = (
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. "
    "The rainbow is a division of white light into many beautiful colors. "
    "These take the shape of a long round arch, with its path high above, "
    "and its two ends apparently beyond the horizon. "
    "There is, according to legend, a boiling pot of gold at one end. "
    "People look, but no one ever finds it. "
    "Throughout the centuries people have explained the rainbow in various ways."
)
"""What a synthesizer voice's own statistics are measured on (the Rainbow Passage, public domain)."""


@dataclass(frozen=True)
class VoiceConfig:
    """WORLD analysis settings of voice matching."""

    frame_period: float = 5.0
    """Milliseconds between analysis frames."""
    num_cepstra: int = 40
    """Mel-cepstral coefficients of the spectral envelope that are matched."""
    fft_size: int = 1024
    f0_floor: float = 60.0
    f0_ceil: float = 500.0
    min_voiced_seconds: float = 1.0
    """Least voiced speech a voice is learned from."""
    max_seconds: float = 60.0
    """Most of the actor's speech a voice is learned from (Harvest takes about 0.3 s per second)."""
    match: bool = True
    """False: no voice is learned and text is said in Flite's default voice as it is (the stage
    then takes a second instead of about 40: for actors only ever driven by recorded speech)."""
    max_wer_increase: float = 0.05
    """Most matching may raise the recogniser's word error rate on the passage over the same Flite
    voice unmatched (intelligibility is kept, at some cost in similarity)."""


@dataclass(frozen=True)
class VoiceStats:
    """Global statistics of one voice: log F0 and mel-cepstra over voiced frames."""

    log_f0_mean: float
    log_f0_std: float
    cepstrum_mean: np.ndarray
    cepstrum_std: np.ndarray
    voiced_seconds: float

    @property
    def f0_hz(self) -> float:
        """Geometric mean F0 of the voice."""
        return float(np.exp(self.log_f0_mean))


@dataclass(frozen=True)
class WorldFrames:
    f0: np.ndarray
    cepstra: np.ndarray
    aperiodicity: np.ndarray


def analyse(audio: np.ndarray, config: VoiceConfig = VoiceConfig(), recorded: bool = False) -> WorldFrames:
    """WORLD analysis of 16 kHz mono speech. F0: DIO + StoneMask for synthesized speech, Harvest
    (about 20x slower) for `recorded` speech, where DIO misses most voicing in noise (0.4 of 4.2 s
    voiced speech found on a VoxCeleb clip, at half its pitch)."""
    x = np.ascontiguousarray(audio, np.float64)
    if recorded:
        f0, times = pyworld.harvest(
            x, AUDIO_RATE, f0_floor=config.f0_floor, f0_ceil=config.f0_ceil, frame_period=config.frame_period
        )
    else:
        f0, times = pyworld.dio(
            x, AUDIO_RATE, f0_floor=config.f0_floor, f0_ceil=config.f0_ceil, frame_period=config.frame_period
        )
        f0 = pyworld.stonemask(x, f0, times, AUDIO_RATE)
    envelope = pyworld.cheaptrick(x, f0, times, AUDIO_RATE, fft_size=config.fft_size)
    aperiodicity = pyworld.d4c(x, f0, times, AUDIO_RATE, fft_size=config.fft_size)
    cepstra = pyworld.code_spectral_envelope(envelope, AUDIO_RATE, config.num_cepstra)
    return WorldFrames(f0, cepstra, aperiodicity)


def voice_stats(
    utterances: list[np.ndarray], config: VoiceConfig = VoiceConfig(), recorded: bool = False
) -> VoiceStats:
    """The statistics of a voice from some of its 16 kHz speech."""
    return frames_stats([analyse(audio, config, recorded) for audio in utterances], config)


def frames_stats(frames: list[WorldFrames], config: VoiceConfig = VoiceConfig()) -> VoiceStats:
    """`voice_stats` of speech already analysed."""
    voiced = [f.f0 > 0 for f in frames]
    log_f0 = np.concatenate([np.log(f.f0[v]) for f, v in zip(frames, voiced)])
    seconds = len(log_f0) * config.frame_period / 1000
    if seconds < config.min_voiced_seconds:
        raise InputError(
            f"only {seconds:.1f} s of voiced speech found; the voice needs at least "
            f"{config.min_voiced_seconds:g} s of the actor speaking"
        )
    cepstra = np.concatenate([f.cepstra[v] for f, v in zip(frames, voiced)])
    return VoiceStats(float(log_f0.mean()), float(log_f0.std()), cepstra.mean(0), cepstra.std(0), seconds)


def convert(
    audio: np.ndarray,
    source: VoiceStats,
    target: VoiceStats,
    spread: float = 1.0,
    config: VoiceConfig = VoiceConfig(),
    frames: WorldFrames | None = None,
) -> np.ndarray:
    """16 kHz speech in the `source` voice moved to the `target` voice's statistics (`spread`: how
    much of the cepstral spread, 0 none, 1 all). `frames`: its analysis, where already made."""
    frames = analyse(audio, config) if frames is None else frames
    f0 = frames.f0.copy()
    voiced = f0 > 0
    f0[voiced] = np.exp(
        (np.log(f0[voiced]) - source.log_f0_mean) / source.log_f0_std * target.log_f0_std + target.log_f0_mean
    )
    cepstra = frames.cepstra.copy()
    scale = (target.cepstrum_std[1:] / source.cepstrum_std[1:]) ** spread
    cepstra[:, 1:] = (cepstra[:, 1:] - source.cepstrum_mean[1:]) * scale + target.cepstrum_mean[1:]
    envelope = pyworld.decode_spectral_envelope(np.ascontiguousarray(cepstra), AUDIO_RATE, config.fft_size)
    speech = pyworld.synthesize(f0, envelope, frames.aperiodicity, AUDIO_RATE, config.frame_period)
    return speech[: len(audio)].astype(np.float32)


SPREADS = (0.0, 0.5, 1.0)
"""How much of the cepstral spread the candidates match."""
PEAK = 0.9
"""Speech louder than this (a matched voice can clip) is scaled down to it."""
REFERENCE_SECONDS = 30.0
"""How much of the actor's speech a voice model keeps for plugged-in cloning engines."""


@dataclass(frozen=True)
class VoiceModel:
    """An actor's voice for text input: the synthesizer voice and how to move it to the actor's."""

    base_voice: str
    """The Flite voice that speaks (`FLITE_VOICES`)."""
    source: VoiceStats
    """That voice's statistics, measured on `REFERENCE_TEXT`."""
    target: VoiceStats | None
    """The actor's; None when there was no speech to learn from (speech is the base voice as is)."""
    spread: float = 1.0
    """How much of the cepstral spread is matched (`convert`)."""
    reference: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Up to `REFERENCE_SECONDS` of the actor's own 16 kHz speech (`{reference}` of --tts-command)."""
    config: VoiceConfig = VoiceConfig()

    def save(self, path: str | os.PathLike) -> None:
        arrays = {
            "base_voice": np.array(self.base_voice),
            "spread": np.array(self.spread),
            "reference": self.reference.astype(np.float32),
            "config": np.array(json.dumps(asdict(self.config))),
        }
        for role, stats in (("source", self.source), ("target", self.target)):
            if stats is not None:
                arrays.update({f"{role}_{key}": np.asarray(value) for key, value in asdict(stats).items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> VoiceModel:
        with np.load(path, allow_pickle=False) as data:

            def stats(role: str) -> VoiceStats | None:
                if f"{role}_log_f0_mean" not in data:
                    return None
                values = {key: data[f"{role}_{key}"] for key in VoiceStats.__dataclass_fields__}
                return VoiceStats(**{key: value if value.ndim else float(value) for key, value in values.items()})

            config = VoiceConfig(**json.loads(str(data["config"])))
            return cls(
                str(data["base_voice"]),
                stats("source"),
                stats("target"),
                float(data["spread"]),
                data["reference"],
                config,
            )


@dataclass(frozen=True)
class Candidate:
    """One way of saying the passage in the actor's voice, as measured by `learn_voice`."""

    voice: str
    spread: float
    similarity: float
    word_error_rate: float | None = None


@dataclass(frozen=True)
class Reading:
    """The passage as one Flite voice reads it: a sentence each, their analyses, its statistics."""

    audio: list[np.ndarray]
    frames: list[WorldFrames]
    stats: VoiceStats


@functools.cache
def flite_reading(voice: str, config: VoiceConfig = VoiceConfig()) -> Reading:
    """`voice` reading `REFERENCE_TEXT` (the same for every actor: made once a process)."""
    audio = [sentence_speech(FliteSynthesizer(voice), piece).audio for piece in split_sentences(REFERENCE_TEXT)]
    frames = [analyse(piece, config) for piece in audio]
    return Reading(audio, frames, frames_stats(frames, config))


def passage_wer(audio: list[np.ndarray]) -> float:
    """The recogniser's word error rate on speech of the passage, a sentence each."""
    return word_error_rate(" ".join(split_sentences(REFERENCE_TEXT)), " ".join(transcribe(audio)))


@functools.cache
def _unmatched_wer(voice: str) -> float:
    return passage_wer(flite_reading(voice).audio)


def learn_voice(
    speech: np.ndarray | None, config: VoiceConfig = VoiceConfig(), progress: bool = False
) -> tuple[VoiceModel, list[Candidate]]:
    """The voice model of an actor from their 16 kHz speech (None: no speech, the default voice
    unmatched), and the candidates it was chosen from, most similar first."""
    default = FLITE_VOICES[0]
    if speech is None:
        return VoiceModel(default, flite_reading(default, config).stats, None, config=config), []
    speech = speech[: int(config.max_seconds * AUDIO_RATE)]
    target = voice_stats([speech], config, recorded=True)
    readings = {voice: flite_reading(voice, config) for voice in FLITE_VOICES}
    actor = speaker_embedding(speech)
    matched, candidates = {}, []
    steps = tqdm(
        total=len(SPREADS) * len(FLITE_VOICES), desc="voice", unit="candidate", disable=not progress, leave=False
    )
    for voice, reading in readings.items():
        for spread in SPREADS:
            matched[voice, spread] = [
                convert(audio, reading.stats, target, spread, config, frames)
                for audio, frames in zip(reading.audio, reading.frames)
            ]
            similarity = float(speaker_embedding(np.concatenate(matched[voice, spread])) @ actor)
            candidates.append(Candidate(voice, spread, similarity))
            steps.update()
    steps.close()
    candidates.sort(key=lambda c: -c.similarity)

    for k, candidate in enumerate(candidates):
        candidates[k] = candidate = dataclasses.replace(
            candidate, word_error_rate=passage_wer(matched[candidate.voice, candidate.spread])
        )
        if candidate.word_error_rate <= _unmatched_wer(candidate.voice) + config.max_wer_increase:
            break
    else:
        candidate = min(candidates, key=lambda c: c.word_error_rate - _unmatched_wer(c.voice))
    reference = speech[: int(REFERENCE_SECONDS * AUDIO_RATE)].astype(np.float32)
    model = VoiceModel(candidate.voice, readings[candidate.voice].stats, target, candidate.spread, reference, config)
    return model, candidates


def speak(
    text: str,
    voice: VoiceModel,
    synthesizer: SpeechSynthesizer | None = None,
    progress: bool = False,
    max_seconds: float | None = None,
) -> Speech:
    """Speech of `text` in the actor's voice (float32, 16 kHz): their matched Flite voice, or a
    plugged-in `synthesizer` (a cloning engine: its speech is used as it comes); at most
    `max_seconds` of it (`audio2pose.tts.synthesize_text`)."""
    if synthesizer is not None:
        speech = synthesize_text(text, synthesizer, progress=progress, max_seconds=max_seconds)
    else:
        match = (
            None
            if voice.target is None
            else (lambda audio: convert(audio, voice.source, voice.target, voice.spread, voice.config))
        )
        speech = synthesize_text(
            text, FliteSynthesizer(voice.base_voice), progress=progress, transform=match, max_seconds=max_seconds
        )
    peak = float(np.abs(speech.audio).max())
    return dataclasses.replace(speech, audio=speech.audio * (PEAK / peak)) if peak > PEAK else speech
