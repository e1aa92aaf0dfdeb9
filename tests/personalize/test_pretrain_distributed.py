"""Corpus pretraining with DistributedDataParallel: `talkface pretrain ...` started by torchrun as 2
gloo processes follows the loss curve of 1 process on the same global batch and ends with the
same networks, also when it resumes a 1-process run's checkpoint. One real clip, tiny networks,
a few steps; the corpus caches are made once and copied into every run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audio2pose.model import AudioToPose
from personalize.cli import main
from recon3d.corpus import CorpusCache
from recon3d.facemodels import load_face_model
from recon3d.fit import FitConfig
from recon3d.pretrain import load_corpus
from recon3d.reconstruct import reconstruct_clip
from recon3d.regressor import CoeffRegressor
from refine.model import Refiner, stack_window, to_tensor
from refine.train import corpus_pairs

ROOT = Path(__file__).resolve().parents[2]
CLIP = "vox_00010.mp4"
TINY_FIT = FitConfig(landmark_steps=60, photometric_steps=0)
REFINE_SIZE = 32
CURVE_RTOL = 1e-4
"""Relative tolerance of the loss curves (measured: at most 1.1e-6 over these runs)."""


@pytest.fixture(scope="module")
def corpus(clips: Path, tmp_path_factory) -> Path:
    """A one-clip corpus and the corpus cache the commands would build first: its track, and a
    tiny-fit reconstruction standing in for the default fit the commands ask for (the fit is the
    slow part, and not what is tested here), with its render pairs."""
    root = tmp_path_factory.mktemp("ddp_corpus")
    video = root / "clips" / CLIP
    video.parent.mkdir()
    shutil.copy(clips / CLIP, video)
    model = load_face_model("builtin")
    cache = CorpusCache(root / "cache")
    (track,) = cache.tracks([video], progress=False)
    recon, _ = reconstruct_clip(video, model, TINY_FIT, track=track, progress=False)
    recon.save(cache.reconstruction_path(video, model, FitConfig()))
    corpus_pairs([video], model, REFINE_SIZE, FitConfig(), 0.3, cache, torch.device("cpu"), progress=False)
    return root


def pretrain(corpus: Path, out: Path, command: str, options: list[str], processes: int) -> None:
    """`talkface pretrain COMMAND` in this process, or started by torchrun as `processes` processes."""
    if not out.exists():
        shutil.copytree(corpus / "cache", out / "cache")
    argv = [
        "pretrain",
        command,
        "--corpus",
        str(corpus / "clips"),
        "-o",
        str(out),
        "--cache",
        str(out / "cache"),
        "--face-model",
        "builtin",
        "--device",
        "cpu",
        *options,
    ]
    if processes == 1:
        assert main(["-q", *argv]) == 0
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            "-m",
            "personalize.cli",
            *argv,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f"data-parallel over {processes} processes (gloo)" in result.stdout + result.stderr


def assert_same_curves(one: list[dict], two: list[dict]) -> None:
    """Records at the same steps whose common terms agree (a resumed run also has the held-out
    scores of the checkpoint it stopped at)."""
    assert [r.get("step", r.get("epoch")) for r in one] == [r.get("step", r.get("epoch")) for r in two]
    pairs = [
        (float(a[key]), float(b[key]))
        for a, b in zip(one, two)
        for key in a.keys() & b.keys()
        if key not in ("step", "epoch")
    ]
    a, b = np.array(pairs).T
    print(
        f"{len(one)} records, {len(a)} values, max relative difference "
        f"{(np.abs(a - b) / np.abs(a).clip(min=1e-12)).max():.2e}"
    )
    np.testing.assert_allclose(b, a, rtol=CURVE_RTOL)


def assert_same_weights(
    one: dict[str, torch.Tensor], two: dict[str, torch.Tensor], atol: float, outliers: float = 0.0
) -> None:
    """Every tensor agrees within `atol` (a tenth of a learning-rate step), but for a fraction
    `outliers` of their elements: Adam turns the rounding noise of a gradient that is ~0 (a bias
    feeding a normalisation, which cancels it; an element whose terms cancel) into a whole step
    of either sign."""
    far = total = 0
    for name, value in one.items():
        if value.is_floating_point():
            far += int(((two[name].double() - value.double()).abs() > atol).sum())
            total += value.numel()
    print(f"{far} of {total} weights differ by more than {atol:g}")
    assert far <= outliers * total


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_audio2pose_on_two_processes_follows_the_curve_of_one(corpus, tmp_path):
    # A batch of 5 splits 3 + 2; dropout 0 because each process draws its own masks.
    options = ["--batch-size", "5", "--seq-len", "16", "--lstm-hidden", "16", "--dropout", "0", "--log-every", "1"]
    pretrain(corpus, tmp_path / "1", "audio2pose", ["--steps", "12", *options], 1)
    pretrain(corpus, tmp_path / "2", "audio2pose", ["--steps", "6", *options], 1)
    pretrain(corpus, tmp_path / "2", "audio2pose", ["--steps", "12", *options], 2)  # resumes at step 6
    one, two = (read_csv(tmp_path / str(n) / "history.csv") for n in (1, 2))
    assert len(one) == 12 and "val_total" in one[-1]
    assert_same_curves(one, two)
    assert_same_weights(*(AudioToPose.load(tmp_path / str(n) / "audio2pose.pt").state_dict() for n in (1, 2)), 1e-5)


def test_refine_on_two_processes_follows_the_curve_of_one(corpus, tmp_path):
    options = ["--size", str(REFINE_SIZE), "--batch-size", "5", "--memory-slots", "32", "--log-every", "1"]
    pretrain(corpus, tmp_path / "1", "refine", ["--steps", "8", *options], 1)
    pretrain(corpus, tmp_path / "2", "refine", ["--steps", "3", *options], 1)
    pretrain(corpus, tmp_path / "2", "refine", ["--steps", "8", *options], 2)  # resumes at step 3
    (one, a), (two, b) = (Refiner.load_checkpoint(tmp_path / str(n) / "refiner.pt") for n in (1, 2))
    history = [json.loads(checkpoint["history"]) for checkpoint in (a, b)]
    assert len(history[0]) == 8 and "held_out_psnr" in history[0][-1]
    assert_same_curves(*history)
    # The memory took the same writes: the same slots, ages and identities.
    assert torch.equal(one.memory.ages, two.memory.ages)
    torch.testing.assert_close(two.memory.values, one.memory.values, rtol=0, atol=1e-6)
    torch.testing.assert_close(two.memory.keys, one.memory.keys, rtol=0, atol=1e-5)
    # Measured: 477 of 428,836 (the biases before the instance and batch norms, and the running
    # means that follow them); the networks compute the same all the same:
    assert_same_weights(one.state_dict(), two.state_dict(), 1e-5, outliers=5e-3)
    _, held_out = corpus_pairs(
        [corpus / "clips" / CLIP],
        load_face_model("builtin"),
        REFINE_SIZE,
        FitConfig(),
        0.3,
        CorpusCache(tmp_path / "1" / "cache"),
        torch.device("cpu"),
        progress=False,
    )
    window = stack_window(to_tensor(held_out.renders[held_out.window_indices(np.arange(len(held_out)), one.window)]))
    with torch.no_grad():
        torch.testing.assert_close(two(window)[0], one(window)[0], rtol=0, atol=1e-4)


def test_recon_on_two_processes_follows_the_curve_of_one(corpus, tmp_path):
    # 16 training frames: 2 batches of 8, each split 4 + 4, batch norm over both shares.
    options = [
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        "64",
        "--width",
        "8",
        "--max-frames-per-clip",
        "16",
    ]
    for n in (1, 2):
        pretrain(corpus, tmp_path / str(n), "recon", options, n)
    model = load_face_model("builtin")
    checkpoints = [torch.load(tmp_path / str(n) / "regressor.pt", weights_only=True) for n in (1, 2)]
    assert_same_curves(*(json.loads(checkpoint["history"]) for checkpoint in checkpoints))
    assert_same_weights(*(checkpoint["state_dict"] for checkpoint in checkpoints), 1e-4, outliers=1e-3)  # measured: 1
    images, _, _ = load_corpus([corpus / "clips" / CLIP], CorpusCache(corpus / "cache"), 64, progress=False)
    with torch.no_grad():
        one, two = (
            CoeffRegressor.load(tmp_path / str(n) / "regressor.pt", model).eval()(images.float() / 255) for n in (1, 2)
        )
    for name in ("id", "exp", "angle", "gamma", "trans"):
        torch.testing.assert_close(getattr(two, name), getattr(one, name), rtol=1e-4, atol=1e-5)
