"""Articulation benchmark: do the lips close on p/b/m and open on vowels, for any actor and any speech?

Synthetic speech (the default): every shared clip as a video actor, and photo actors (the
astronaut sample; stills of clips at several sizes, 224 px included; a painted and a drawn still
of closed lips), each say new sentences, one per voice, in several engines' voices:
- Flite's four voices (rms, awb, slt, kal): generated as `generate --text` does, with the phone
  timings Flite reports (exact);
- Festival's Debian voices (kal_diphone, cmu_us_slt_arctic_hts): scored against the segment
  timings Festival reports (exact), but driven as a plugged-in `--tts-command` engine is: its
  audio and text, the text aligned by PocketSphinx;
- espeak-ng (en-us+f3): audio and text, scored against the text aligned to its audio (espeak-ng
  reports no timings, Debian has no MBROLA US voices, and PocketSphinx aligns none of its male
  en-us voice's speech).
Speech in another language (`--voices festival:lp_diphone`, Festival's Italian voice, its
segments mapped to the CMU phones that look alike) is given as audio alone. On
`--degraded-actors`, one Flite sentence is also given as audio alone (the phones recognised)
clean, in a reverberant room (RT60 0.6 s, as much reverberant energy as direct), with pink noise
(15 dB SNR), with music under it (10 dB), telephone-band (8 kHz), and 0.8x and 1.25x as fast
(`DEGRADATIONS`), all scored against the clean phones (times scaled).

The generated video is re-tracked by mediapipe frame by frame (`recon3d.track`, without the
One-Euro smoothing that takes a 40-80 ms closure for jitter) and its inner-lip aperture scored
(`audio2pose.metrics.articulation_scores`): bilabial closure rate, open/closed contrast, r with the
phones' openness and the lag at which it peaks (+ = the mouth leads the sound).

Real speech (`--real`): each clip's actor learns from its first 60% (WORK/<face model>/real/<name>)
and says the last 40%'s real speech; the output and the real tail are tracked as `talkface
evaluate` tracks them and compared: mouth r (of the inner-lip apertures) and LMD. Cross-driving:
each actor also says the next clip's held-out speech, scored against that clip's real mouth (r).
With `--plans-only`, the planned expressions' lip gaps (`audio2pose.articulation.lip_gaps`) are
scored instead of a video: seconds per clip, for sweeping `--habits`.

Actors are personalized into WORK/<face model>/<name> (resumed when there; the voice stage is
skipped: it plays no part here); outputs stay in WORK.

    python scripts/eval_articulation.py --work out/articulation --json articulation.json
    python scripts/eval_articulation.py --real --json real.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import librosa
import numpy as np
import pyworld
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from audio2pose.articulation import lip_gaps
from audio2pose.features import load_speech
from audio2pose.metrics import articulation_scores, landmark_aperture, mouth_landmark_distance, pearson
from audio2pose.phones import PhoneTimings, align_words, flite_phones, transcript_words
from audio2pose.tts import FliteSynthesizer, Speech, sentence_speech
from audio2pose.voice import VoiceConfig
from personalize.bundle import Actor
from personalize.evaluate import EvaluateConfig, heldout_video
from personalize.generate import GenerateConfig, generate, plan_speech
from personalize.pipeline import PersonalizeConfig, personalize
from personalize.samples import sample_photo
from recon3d.facemodels import load_face_model
from recon3d.smoothing import SmoothingConfig
from recon3d.track import TrackConfig, track_video
from recon3d.video import AUDIO_RATE, iter_frames, probe

SENTENCES = (
    "Bob bought a map of the old mill by the pond.",
    "Please move the big box up to my cabin, Pam.",
    "A warm bath may help, but a nap is better for a baby.",
    "My father paid for the boat with a pile of paper money.",
    "Maybe the palm trees bloom by May, Bill promised.",
    "The lamb and the puppy sleep by the warm lamp.",
    "Mom baked apple pie for the members of the band.",
)
"""New speech, rich in bilabials and open vowels (none of it said in the clips): one per voice."""
VOICES = (
    "flite:rms",
    "flite:awb",
    "flite:slt",
    "flite:kal",
    "festival:kal_diphone",
    "festival:cmu_us_slt_arctic_hts",
    "espeak-ng:en-us+f3",
)
PHOTOS = {
    # name: (clip, frame, side in pixels of the still's shorter edge, style)
    "astronaut": (None, 0, 512, None),
    "vox_00010@224": ("vox_00010", 0, 224, None),
    "vox_00098@224": ("vox_00098", 0, 224, None),
    "hdtf_katie@512": ("hdtf_katie_8s", 0, 512, None),
    "hdtf_katie@224": ("hdtf_katie_8s", 0, 224, None),
    "retalk_2@400": ("retalk_2", 0, 400, None),
    "retalk_3 painting": ("retalk_3", None, 447, "painting"),
    "vox_00473 drawing": ("vox_00473", None, 448, "drawing"),
}
"""Stills of clips (None: the clip's most closed mouth) at several sizes; a painting and a
drawing (OpenCV's edge-preserving stylization and colour pencil sketch) of closed lips."""
DEGRADED_ACTORS = ("hdtf_aoc_8s", "retalk_1", "vox_00015", "vox_00086", "astronaut", "vox_00010@224")
UNSMOOTHED = SmoothingConfig(min_cutoff=1e4, beta=0.0)
"""A One-Euro cutoff far above the frame rate: each frame's own landmarks."""
NO_VOICE = VoiceConfig(match=False)
"""No voice is learned (the benchmark never speaks text in the actor's voice)."""


# ------------------------------------------------------------------------------------------- speech
ITALIAN = {"#": "pau", "a": "aa", "e": "eh", "E": "eh", "i": "iy", "o": "ao", "O": "ao", "u": "uw", "j": "y"}
ITALIAN |= {"tS": "ch", "dZ": "jh", "S": "sh", "ts": "t", "dz": "d", "J": "n", "L": "l"}
"""Festival's Italian phones (stress digits dropped) as the CMU phones that look alike."""
OTHER_LANGUAGE = {"festival:lp_diphone": "Mamma porta il pane e la mela al bambino, poi beve un bicchiere d'acqua."}
"""Speech in another language (Festival's Italian voice), given as audio alone: the recogniser
hears it as English words, and the mouth must still open on the vowels and close on p/b/m."""


def festival_speech(voice: str, text: str) -> tuple[np.ndarray, PhoneTimings]:
    with tempfile.TemporaryDirectory() as tmp:
        wav, segs, script = Path(tmp) / "s.wav", Path(tmp) / "s.segs", Path(tmp) / "s.scm"
        quoted = text.replace('"', "")
        script.write_text(
            f'(voice_{voice})\n(set! utt (Utterance Text "{quoted}"))\n(utt.synth utt)\n'
            f'(utt.save.wave utt "{wav}" \'riff)\n(utt.save.segs utt "{segs}")\n'
        )
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True, timeout=120)
        audio, rate = librosa.load(wav, sr=None)
        psdur = " ".join(
            f"{ITALIAN.get(re.sub(r'[0-9]', '', name), name)}:{end}"
            for end, _, name in (line.split() for line in segs.read_text().splitlines()[1:])
        )
    return resample_poly(audio, AUDIO_RATE, rate).astype(np.float32), flite_phones(psdur)


def espeak_speech(voice: str, text: str) -> tuple[np.ndarray, PhoneTimings]:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True, timeout=120)
        audio, rate = librosa.load(wav, sr=None)
    audio = resample_poly(audio, AUDIO_RATE, rate).astype(np.float32)
    phones = align_words(audio, transcript_words(text), "transcript")
    if phones is None:
        raise SystemExit(f"espeak-ng {voice}: PocketSphinx cannot align its speech of {text!r}; choose another voice")
    return audio, phones


def voice_speech(voice: str, text: str) -> tuple[Speech, PhoneTimings]:
    """What generate is given (a Speech: Flite's with its phones, other engines' with none, so the
    text is aligned as a plugged-in engine's is; speech in another language: its audio alone) and
    the phones it is scored against."""
    engine, name = voice.split(":")
    if voice in OTHER_LANGUAGE:
        return festival_speech(name, OTHER_LANGUAGE[voice])
    if engine == "flite":
        speech = sentence_speech(FliteSynthesizer(name), text)
        return speech, speech.phones
    audio, phones = (festival_speech if engine == "festival" else espeak_speech)(name, text)
    return Speech(audio, text, None), phones


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, n)


def at_snr(speech: np.ndarray, noise: np.ndarray, db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (db / 10))
    return speech + gain * noise


def music(n: int) -> np.ndarray:
    """A chord progression with a beat: the music under speech in a video."""
    t, out = np.arange(n) / AUDIO_RATE, np.zeros(n)
    for k, root in enumerate((220.0, 174.6, 261.6, 196.0) * 8):
        part = (t >= k * 0.5) & (t < (k + 1) * 0.5)
        for ratio in (1.0, 1.25, 1.5):
            out[part] += np.sin(2 * np.pi * root * ratio * t[part]) * np.exp(-3 * (t[part] - k * 0.5))
    return out


def degrade(audio: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    """`audio` degraded, and the factor its times are stretched by."""
    rng = np.random.default_rng(0)
    if kind == "reverb":  # a room of RT60 0.6 s heard from 1-2 m (as much reverberant energy as direct)
        t = np.arange(int(0.6 * AUDIO_RATE)) / AUDIO_RATE
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / 0.6)
        rir[:40] = 0.0  # the first reflections arrive a few ms after the direct sound
        rir /= np.sqrt(np.sum(rir**2))
        rir[0] = 1.0
        out = fftconvolve(audio, rir)[: len(audio)]
        return out / np.abs(out).max() * np.abs(audio).max(), 1.0
    if kind == "noise":
        return at_snr(audio, pink_noise(len(audio), rng), 15.0), 1.0
    if kind == "music":
        return at_snr(audio, music(len(audio)), 10.0), 1.0
    if kind == "phone":
        band = sosfilt(butter(4, (300, 3400), "bandpass", fs=AUDIO_RATE, output="sos"), audio)
        return resample_poly(resample_poly(band, 1, 2), 2, 1), 1.0
    if kind.startswith("tempo"):  # WORLD's analysis resampled in time: a faster or slower speaker, same voice
        factor = 1.0 / float(kind[5:])
        x = np.asarray(audio, np.float64)
        f0, sp, ap = pyworld.wav2world(x, AUDIO_RATE, frame_period=5.0)
        at = np.clip(np.round(np.arange(int(len(f0) * factor)) / factor).astype(int), 0, len(f0) - 1)
        return pyworld.synthesize(f0[at], sp[at], ap[at], AUDIO_RATE, frame_period=5.0), factor
    return audio, 1.0


DEGRADATIONS = ("clean", "reverb", "noise", "music", "phone", "tempo0.8", "tempo1.25")


def stretched(timings: PhoneTimings, factor: float) -> PhoneTimings:
    return PhoneTimings(
        tuple(dataclasses.replace(p, start=p.start * factor, end=p.end * factor) for p in timings.phones),
        timings.source,
    )


# ------------------------------------------------------------------------------------------- actors
def still(name: str, clips: Path, work: Path) -> Path:
    clip, index, side, style = PHOTOS[name]
    if clip is None:
        return sample_photo()
    path = work / f"{name.replace(' ', '_')}.png"
    if path.exists():
        return path
    frames = list(iter_frames(clips / f"{clip}.mp4"))
    if index is None:  # the most closed mouth of the clip's tracked frames
        track = track_video(clips / f"{clip}.mp4", TrackConfig(), progress=False)
        index = int(np.argmin(landmark_aperture(track.ibug68)))
    frame = frames[index]
    scale = side / min(frame.shape[:2])
    frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if style == "painting":
        bgr = cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)
    elif style == "drawing":
        bgr = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)[1]
    cv2.imwrite(str(path), bgr)
    return path


def made_actor(source: Path, bundle: Path, args: argparse.Namespace, end: float | None = None) -> tuple[Actor, float]:
    start = time.perf_counter()
    config = PersonalizeConfig(face_model=args.face_model, end=end, voice=NO_VOICE)
    personalize(source, bundle, config, args.device, progress=False)
    return Actor.load(bundle, args.face_model), time.perf_counter() - start


def tracked_aperture(video: Path, actor: Actor, smoothing: SmoothingConfig) -> tuple[np.ndarray, np.ndarray]:
    ibug = track_video(video, TrackConfig(crop_size=actor.recon.crop.size, smoothing=smoothing), progress=False).ibug68
    return landmark_aperture(ibug), ibug


# ---------------------------------------------------------------------------------------- protocols
def synthetic(args: argparse.Namespace, work: Path) -> list[dict]:
    # Each voice says its own sentence (the same whichever voices are chosen).
    sentence = {
        voice: SENTENCES[(VOICES.index(voice) if voice in VOICES else k) % len(SENTENCES)]
        for k, voice in enumerate(args.voices)
    }
    speech = {voice: voice_speech(voice, sentence[voice]) for voice in args.voices}
    actors = [(name, args.clips / f"{name}.mp4", False) for name in args.videos]
    actors += [(name, still(name, args.clips, args.work), True) for name in args.photos]
    rows = []
    for name, source, photo in actors:
        actor, seconds = made_actor(source, work / name.replace(" ", "_"), args)
        runs = [(voice, said, phones, 1.0, sentence[voice]) for voice, (said, phones) in speech.items()]
        if name in args.degraded_actors:
            said, phones = speech[args.voices[0]]
            for kind in DEGRADATIONS:
                audio, factor = degrade(said.audio, kind)
                runs.append(
                    (
                        f"{args.voices[0]} audio {kind}",
                        np.asarray(audio, np.float32),
                        phones,
                        factor,
                        sentence[args.voices[0]],
                    )
                )
        for mode in args.articulation:
            for voice, said, phones, factor, text in runs:
                output = (
                    work
                    / f"{name.replace(' ', '_')}.{mode}.{voice.replace(' ', '_').replace(':', '-')}.s{SENTENCES.index(text)}.mp4"
                )
                if not output.exists():
                    generate(
                        actor,
                        said,
                        output,
                        GenerateConfig(articulation=mode, habits=args.habits),
                        args.device,
                        progress=False,
                    )
                aperture, _ = tracked_aperture(output, actor, UNSMOOTHED)
                scores = articulation_scores(aperture, stretched(phones, factor))
                rows.append(
                    {
                        "actor": name,
                        "photo": photo,
                        "size": min(probe(source).width, probe(source).height),
                        "articulation": mode,
                        "voice": voice,
                        "personalize_seconds": round(seconds, 1),
                        **{k: round(v, 3) for k, v in scores.items()},
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def real(args: argparse.Namespace, work: Path) -> list[dict]:
    """Held-out real speech, and cross-driving (each actor says the next clip's held-out speech)."""
    tails, actors, truth = {}, {}, {}
    for name in args.videos:
        video = args.clips / f"{name}.mp4"
        actors[name], seconds = made_actor(video, work / name, args, end=round(0.6 * probe(video).duration, 2))
        tails[name], _ = heldout_video(actors[name], None, None, work, EvaluateConfig())
        truth[name] = tracked_aperture(tails[name], actors[name], SmoothingConfig())
    rows = []
    for k, name in enumerate(args.videos):
        other = args.videos[(k + 1) % len(args.videos)]
        for mode in args.articulation:
            row = {"clip": name, "articulation": mode}
            config = GenerateConfig(articulation=mode, habits=args.habits)
            if args.plans_only:  # the planned expressions' lip gaps: no rendering, no tracking
                audio, frames = load_speech(tails[name], None, actors[name].audio2pose.config.features)
                plan, _ = plan_speech(actors[name], audio, frames, config, args.device)
                gaps = lip_gaps(actors[name].face_model, actors[name].recon.split("cpu").id[0], plan.exp)
                n = min(len(gaps), len(truth[name][0]))
                rows.append(
                    {**row, "habits": args.habits, "plan_mouth_r": round(pearson(gaps[:n], truth[name][0][:n]), 3)}
                )
                print(json.dumps(rows[-1]), flush=True)
                continue
            for said, key in ((name, ""), (other, "cross_")):
                output = work / f"{name}.{mode}.{'own' if said == name else 'from_' + said}.mp4"
                if not output.exists():
                    generate(actors[name], tails[said], output, config, args.device, progress=False)
                aperture, ibug = tracked_aperture(output, actors[name], SmoothingConfig())
                real_aperture, real_ibug = truth[said]
                n = min(len(aperture), len(real_aperture))
                row[f"{key}mouth_r"] = round(pearson(aperture[:n], real_aperture[:n]), 3)
                if not key:
                    row["lmd"] = round(mouth_landmark_distance(real_ibug, ibug), 4)
                    row["heldout_frames"] = n
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def summarise(rows: list[dict], real_speech: bool) -> dict:
    summary = {}
    if real_speech:
        for mode in dict.fromkeys(r["articulation"] for r in rows):
            chosen = [r for r in rows if r["articulation"] == mode]
            keys = ("plan_mouth_r",) if "plan_mouth_r" in chosen[0] else ("mouth_r", "lmd", "cross_mouth_r")
            summary[mode] = {k: round(float(np.mean([r[k] for r in chosen])), 3) for k in keys}
        return summary
    keys = ("closure_rate", "contrast", "openness_r")
    for mode in dict.fromkeys(r["articulation"] for r in rows):
        for group, test in (
            ("video", lambda r: not r["photo"] and "audio" not in r["voice"]),
            ("photo", lambda r: r["photo"] and "audio" not in r["voice"]),
            ("224 px", lambda r: r["size"] <= 224 and "audio" not in r["voice"]),
            *((f"audio {d}", lambda r, d=d: r["voice"].endswith(f"audio {d}")) for d in DEGRADATIONS),
        ):
            chosen = [r for r in rows if r["articulation"] == mode and test(r)]
            if chosen:
                summary[f"{mode} {group}"] = {
                    **{k: round(float(np.nanmean([r[k] for r in chosen])), 3) for k in keys},
                    **{f"min_{k}": round(float(np.nanmin([r[k] for r in chosen])), 3) for k in keys},
                    "max_abs_lag": max(abs(r["openness_lag"]) for r in chosen),
                    "runs": len(chosen),
                }
    return summary


def add_actor_arguments(parser: argparse.ArgumentParser, photos: list[str]) -> None:
    """The options of the benchmarks that make actors of the shared clips and stills (this one's
    and `eval_alive`'s): where, with which face model, which actors, the JSON out, the device."""
    parser.add_argument("--work", type=Path, default=Path("out/articulation"))
    parser.add_argument("--face-model", default="builtin")
    parser.add_argument("--videos", nargs="*", help="clips (default: all)")
    parser.add_argument("--photos", nargs="*", default=photos)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=Path("../shared/data/clips"))
    add_actor_arguments(parser, list(PHOTOS))
    parser.add_argument("--voices", nargs="*", default=list(VOICES))
    parser.add_argument("--degraded-actors", nargs="*", default=list(DEGRADED_ACTORS))
    parser.add_argument("--articulation", nargs="*", default=[GenerateConfig.articulation])
    parser.add_argument("--real", action="store_true", help="held-out real speech instead of synthetic")
    parser.add_argument("--plans-only", action="store_true", help="with --real: score the planned mouths (no video)")
    parser.add_argument("--habits", type=float, default=GenerateConfig.habits, help="generate's --habits")
    args = parser.parse_args()
    args.videos = args.videos if args.videos is not None else sorted(p.stem for p in args.clips.glob("*.mp4"))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    face_model = load_face_model(args.face_model)
    work = args.work / face_model.name / ("real" if args.real else "")
    work.mkdir(parents=True, exist_ok=True)
    rows = real(args, work) if args.real else synthetic(args, work)
    summary = summarise(rows, args.real)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"face_model": face_model.name, "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
