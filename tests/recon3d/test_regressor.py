"""The coefficient regressor (`recon3d.regressor`) and its weakly supervised training
(`recon3d.pretrain`) on a tiny corpus of real clips."""

import json
import logging
import shutil

import pytest
import torch

from recon3d.corpus import CorpusCache
from recon3d.errors import InputError
from recon3d.facemodel import CoeffLayout, FaceModel
from recon3d.facemodels import load_face_model
from recon3d.pretrain import PretrainReconConfig, RegressorTrainer, corpus_videos, split_frames
from recon3d.regressor import CoeffRegressor, RegressorConfig

TINY_NET = RegressorConfig(image_size=64, width=8, blocks=(1, 1))


@pytest.fixture(scope="module")
def builtin() -> FaceModel:
    return load_face_model("builtin")


def test_forward_shapes_follow_the_layout():
    layout = CoeffLayout(id_dim=7, exp_dim=5, tex_dim=4)
    regressor = CoeffRegressor(layout, TINY_NET).eval()
    images = torch.rand(3, 3, 96, 96)  # resized to the network's 64
    coeffs = regressor(images)
    sizes = {name: getattr(coeffs, name).shape for name in ("id", "exp", "tex", "angle", "gamma", "trans")}
    assert sizes == {name: (3, size) for name, size in layout.sizes}
    assert layout.join(coeffs).shape == (3, layout.total)


def test_untrained_regressor_predicts_the_mean_face_at_the_offset(builtin):
    regressor = CoeffRegressor(builtin.layout, TINY_NET).eval()
    regressor.trans_offset.copy_(torch.tensor([0.1, -0.2, -3.0]))
    coeffs = regressor(torch.rand(4, 3, 64, 64))
    vector = builtin.layout.join(coeffs)
    trans = builtin.layout.slice("trans")
    assert (vector[:, : trans.start] == 0).all()
    assert (coeffs.trans == torch.tensor([0.1, -0.2, -3.0])).all()


def test_checkpoint_round_trip_and_face_model_check(builtin, tmp_path):
    torch.manual_seed(0)
    regressor = CoeffRegressor(builtin.layout, TINY_NET)
    with torch.no_grad():
        regressor.head.weight.normal_(0, 0.1)  # non-trivial outputs
        regressor.trans_offset.copy_(torch.tensor([0.0, 0.1, -3.0]))
    regressor.train()
    regressor(torch.rand(8, 3, 64, 64))  # moves the batch-norm running statistics off their defaults
    regressor.eval()
    path = tmp_path / "regressor.pt"
    regressor.save(path, builtin, {"note": "extra entries are kept"})
    loaded = CoeffRegressor.load(path, builtin).eval()
    assert loaded.config == regressor.config and loaded.layout == regressor.layout
    images = torch.rand(2, 3, 64, 64)
    expected, got = builtin.layout.join(regressor(images)), builtin.layout.join(loaded(images))
    assert expected.abs().max() > 0.01 and torch.equal(expected, got)
    assert torch.load(path, weights_only=True)["note"] == "extra entries are kept"  # plain data, no pickled code

    other = FaceModel(
        "other", builtin.mean_shape, builtin.id_basis, builtin.exp_basis, builtin.faces, builtin.landmark_idx
    )
    with pytest.raises(InputError, match="trained for face model 'mediapipe-builtin', not 'other'") as err:
        CoeffRegressor.load(path, other)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "dict_without_version",
        "list",
        "wrong_version",
        "text",
        "empty",
        "tensor",
    ],
)
def test_garbage_checkpoint_raises_one_line_input_error(builtin, tmp_path, case):
    path = tmp_path / "regressor.pt"
    if case == "dict_without_version":
        torch.save({"state_dict": {}}, path)
    elif case == "list":
        torch.save([1, 2, 3], path)
    elif case == "wrong_version":
        torch.save({"format_version": 99}, path)
    elif case == "text":
        path.write_text("not a checkpoint")
    elif case == "empty":
        path.touch()
    elif case == "tensor":
        torch.save(torch.zeros(3), path)
    with pytest.raises(InputError, match="regressor") as err:
        CoeffRegressor.load(path, builtin)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- training


def test_split_frames_holds_out_each_clips_tail():
    clip_ids = torch.tensor([0] * 20 + [1] * 10 + [2] * 1)
    train, val = split_frames(clip_ids, val_fraction=0.1, max_per_clip=0)
    assert val.tolist() == [18, 19, 29]  # 2 of 20, 1 of 10; a one-frame clip keeps its frame for training
    assert train.tolist() == list(range(18)) + list(range(20, 29)) + [30]
    train, val = split_frames(clip_ids, val_fraction=0.1, max_per_clip=4)
    assert val.tolist() == [18, 19, 29]  # thinning does not touch the held-out tail
    assert train.tolist() == [0, 6, 11, 17, 20, 23, 25, 28, 30]  # evenly spread over each head, ends kept


@pytest.fixture(scope="module")
def corpus(clips, tmp_path_factory):
    """A folder with two real clips (symlinks) and a non-video file that must be ignored."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in ("vox_00010.mp4", "vox_00002.mp4"):
        (folder / name).symlink_to(clips / name)
    (folder / "notes.txt").write_text("not a clip")
    return folder


def tiny_training(epochs: int, seed: int = 0) -> PretrainReconConfig:
    return PretrainReconConfig(
        regressor=TINY_NET, epochs=epochs, batch_size=16, max_frames_per_clip=32, render_size=32, seed=seed
    )


def _history(out) -> list[dict]:
    return json.loads(torch.load(out / "regressor.pt", weights_only=True)["history"])


@pytest.fixture(scope="module")
def trained(builtin, corpus, tmp_path_factory):
    """Two epochs, then the same run asked for three: (output folder, first record, second record, log)."""
    out = tmp_path_factory.mktemp("pretrain")
    trainer = RegressorTrainer(builtin, tiny_training(2), torch.device("cpu"))
    first = trainer.train(corpus, out, progress=False, cache=CorpusCache(out / "tracks"))
    history = _history(out)
    logger = logging.getLogger("talkface")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        resumed = RegressorTrainer(builtin, tiny_training(3), torch.device("cpu")).train(
            corpus, out, progress=False, cache=CorpusCache(out / "tracks")
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return out, first, history, resumed, records


def test_training_lowers_the_loss_and_writes_a_checkpoint(trained, builtin, corpus):
    out, first, history, _, _ = trained
    assert [video.name for video in corpus_videos(corpus)] == ["vox_00002.mp4", "vox_00010.mp4"]
    tracks = sorted(p.name for p in (out / "tracks").iterdir())  # in the corpus cache given
    assert len(tracks) == 2 and tracks[0].startswith("vox_00002-") and tracks[1].startswith("vox_00010-")
    assert [record["epoch"] for record in history] == [1, 2] and first == history[-1]
    print("epochs:", [{k: round(v, 4) for k, v in record.items()} for record in history])
    assert history[1]["total"] < history[0]["total"] or history[1]["landmark"] < history[0]["landmark"]
    assert set(first) == {"epoch", "landmark", "photometric", "prior", "total", "val_landmark_error"}
    assert 0 < first["val_landmark_error"] < 1
    # The checkpoint is a regressor for this face model; its offset is the corpus's mean face position.
    regressor = CoeffRegressor.load(out / "regressor.pt", builtin)
    x, y, z = regressor.trans_offset.tolist()
    assert regressor.config == TINY_NET and abs(x) < 0.5 and abs(y) < 0.5 and -8 < z < -2


def test_rerun_with_more_epochs_resumes(trained):
    out, _, history, resumed, log = trained
    assert resumed["epoch"] == 3
    assert _history(out)[:2] == history  # epochs 1 and 2 are kept, not redone
    assert len(_history(out)) == 3
    assert any("resuming" in line and "epoch 3" in line for line in log)
    assert not any(line.startswith(("epoch 1:", "epoch 2:")) for line in log)
    assert any(line.startswith("epoch 3:") for line in log)


def test_same_seed_gives_the_same_first_epoch(trained, builtin, corpus, tmp_path):
    def first_epoch(seed: int) -> dict:
        out = tmp_path / f"seed{seed}"
        shutil.copytree(trained[0] / "tracks", out / "tracks")  # skip tracking again
        return RegressorTrainer(builtin, tiny_training(1, seed), torch.device("cpu")).train(
            corpus, out, progress=False, cache=CorpusCache(out / "tracks")
        )

    assert first_epoch(0) == trained[2][0]
    assert first_epoch(1)["total"] != trained[2][0]["total"]


def test_resumed_run_matches_an_uninterrupted_one(trained, builtin, corpus, tmp_path):
    out, _, _, resumed, _ = trained
    shutil.copytree(out / "tracks", tmp_path / "tracks")
    uninterrupted = RegressorTrainer(builtin, tiny_training(3), torch.device("cpu")).train(
        corpus, tmp_path, progress=False, cache=CorpusCache(tmp_path / "tracks")
    )
    assert uninterrupted == resumed


def test_missing_or_empty_corpus_raises_input_error(tmp_path, builtin):
    trainer = RegressorTrainer(builtin, tiny_training(1), torch.device("cpu"))
    with pytest.raises(InputError, match="corpus folder not found"):
        trainer.train(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos"):
        trainer.train(tmp_path / "empty", tmp_path / "out", progress=False)
