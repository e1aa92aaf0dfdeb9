"""Voice matching measured on real actors: speaker similarity, intelligibility and speed.

For each clip, the voice is learned from its soundtrack as `talkface personalize` does
(`audio2pose.voice.learn_voice`), then ten Harvard sentences (IEEE 1969, list 1) are said three
ways: by flite's default voice (rms) unmatched, by the actor's chosen Flite voice unmatched, and
matched (`speak`). Reported per clip and on average:

- speaker similarity: GE2E cosine of each sentence to the actor's recorded speech, averaged over
  the sentences (the recording is the one the voice was learned from: the clips are 4-8 s);
- word error rate of PocketSphinx on the sentences;
- speed: seconds to say (synthesize + match) the ten sentences, over their duration.

    python scripts/eval_voice.py --clips ../shared/data/clips --jobs 2 -o out/eval_voice.json
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

from audio2pose.metrics import speaker_embedding, transcribe, word_error_rate
from audio2pose.tts import FLITE_VOICES, FliteSynthesizer, sentence_speech
from audio2pose.voice import learn_voice, speak
from recon3d.video import AUDIO_RATE, read_audio

HARVARD_LIST_1 = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
)


def score(speech: list[np.ndarray], actor: np.ndarray) -> dict[str, float]:
    similarity = float(np.mean([speaker_embedding(audio) @ actor for audio in speech]))
    heard = transcribe(speech)
    wer = float(np.mean([word_error_rate(said, text) for said, text in zip(HARVARD_LIST_1, heard)]))
    return {"similarity": round(similarity, 4), "word_error_rate": round(wer, 4)}


def evaluate_clip(clip: Path) -> dict:
    torch.set_num_threads(1)
    recording = read_audio(clip, AUDIO_RATE)
    actor = speaker_embedding(recording)
    start = time.perf_counter()
    model, _ = learn_voice(recording)
    learn_seconds = time.perf_counter() - start
    start = time.perf_counter()
    matched = [speak(sentence, model).audio for sentence in HARVARD_LIST_1]
    speak_seconds = time.perf_counter() - start
    audio_seconds = sum(len(audio) for audio in matched) / AUDIO_RATE
    default = [sentence_speech(FliteSynthesizer(FLITE_VOICES[0]), s).audio for s in HARVARD_LIST_1]
    base = [sentence_speech(FliteSynthesizer(model.base_voice), s).audio for s in HARVARD_LIST_1]
    return {
        "clip": clip.name,
        "base_voice": model.base_voice,
        "spread": model.spread,
        "f0_hz": round(model.target.f0_hz, 1),
        "default_unmatched": score(default, actor),
        "base_unmatched": score(base, actor),
        "matched": score(matched, actor),
        "learn_seconds": round(learn_seconds, 2),
        "speak_seconds": round(speak_seconds, 3),
        "audio_seconds": round(audio_seconds, 3),
        "real_time_factor": round(speak_seconds / audio_seconds, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=Path("../shared/data/clips"), help="folder of actor videos")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips (0: all)")
    parser.add_argument("--jobs", type=int, default=1, help="clips evaluated at once")
    parser.add_argument("-o", "--output", type=Path, default=Path("out/eval_voice.json"))
    args = parser.parse_args()
    clips = sorted(args.clips.glob("*.mp4"))[: args.limit or None]
    with Pool(args.jobs) as pool:
        rows = []
        for row in pool.imap(evaluate_clip, clips):
            rows.append(row)
            print(
                f"{row['clip']:22s} {row['base_voice']} spread {row['spread']:.1f} "
                f"F0 {row['f0_hz']:5.0f}  similarity default {row['default_unmatched']['similarity']:.3f} "
                f"base {row['base_unmatched']['similarity']:.3f} matched {row['matched']['similarity']:.3f}  "
                f"WER default {row['default_unmatched']['word_error_rate']:.2f} base "
                f"{row['base_unmatched']['word_error_rate']:.2f} matched {row['matched']['word_error_rate']:.2f}  "
                f"RTF {row['real_time_factor']:.3f}  learn {row['learn_seconds']:.1f} s",
                flush=True,
            )

    def mean(kind: str, key: str) -> float:
        return round(float(np.mean([row[kind][key] for row in rows])), 4)

    summary = {
        f"{kind}_{key}": mean(kind, key)
        for kind in ("default_unmatched", "base_unmatched", "matched")
        for key in ("similarity", "word_error_rate")
    }
    for baseline in ("default_unmatched", "base_unmatched"):
        gains = [row["matched"]["similarity"] - row[baseline]["similarity"] for row in rows]
        summary[f"similarity_gain_over_{baseline}"] = {
            "mean": round(float(np.mean(gains)), 4),
            "min": round(float(np.min(gains)), 4),
        }
    summary["real_time_factor"] = round(
        sum(r["speak_seconds"] for r in rows) / sum(r["audio_seconds"] for r in rows), 4
    )
    summary["learn_seconds_mean"] = round(float(np.mean([r["learn_seconds"] for r in rows])), 2)
    print(json.dumps(summary, indent=1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"clips": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
