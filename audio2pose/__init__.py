"""Audio -> per-frame expression and head pose (after Yi et al. 2020).

`audio2pose.features` turns speech into one MFCC (+ phone) window per 25 fps video frame,
`audio2pose.model` holds the network and its loss, `audio2pose.train` trains it on a corpus and
per actor, `audio2pose.general` loads the corpus-trained models (one per face model),
`audio2pose.metrics` measures predicted against real motion and synthesized against real voices,
`audio2pose.tts` says text with a synthesizer, `audio2pose.voice` matches it to an actor's voice.
"""

from audio2pose.features import FeatureConfig, audio_features, load_speech
from audio2pose.general import load_general_model
from audio2pose.model import AudioToPose, AudioToPoseConfig, Motion
from audio2pose.train import FinetuneConfig, finetune, predict_motion, pretrain_audio2pose
from audio2pose.tts import CommandSynthesizer, FliteSynthesizer, SpeechSynthesizer
from audio2pose.voice import VoiceModel, learn_voice, speak

__all__ = [
    "AudioToPose",
    "AudioToPoseConfig",
    "CommandSynthesizer",
    "FeatureConfig",
    "FinetuneConfig",
    "FliteSynthesizer",
    "Motion",
    "SpeechSynthesizer",
    "VoiceModel",
    "audio_features",
    "finetune",
    "learn_voice",
    "load_general_model",
    "load_speech",
    "predict_motion",
    "pretrain_audio2pose",
    "speak",
]
