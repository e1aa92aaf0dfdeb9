"""The BFM loader on a small file with the structure of Deep3DFaceRecon's BFM_model_front.mat."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

from recon3d.errors import InputError
from recon3d.facemodels import load_bfm, load_face_model
from tests.recon3d.test_facemodel import grid_faces

ROWS, COLS = 12, 10
NUM = ROWS * COLS


def deep3d_mat(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The keys, shapes, 1-based indices and 0-255 textures that transferBFM09 writes."""
    y, x = np.mgrid[0:ROWS, 0:COLS] / 10.0
    mean = np.stack([x.ravel(), y.ravel(), 0.3 * np.cos(x.ravel() - 0.45)], axis=1) + [0.5, -0.2, 9.0]
    faces = grid_faces(ROWS, COLS)
    skin = np.zeros((1, NUM))
    skin[0, 20:90] = 1
    return {
        "meanshape": mean.reshape(1, -1),
        "idBase": rng.normal(size=(3 * NUM, 80)) * 0.01,
        "exBase": rng.normal(size=(3 * NUM, 64)).astype(np.float32) * 0.01,
        "meantex": rng.uniform(60, 200, (1, 3 * NUM)),
        "texBase": rng.normal(size=(3 * NUM, 80)) * 5,
        "tri": faces + 1,
        "point_buf": rng.integers(1, len(faces) + 1, (NUM, 8)),
        "tri_mask2": faces[:50] + 1,
        "keypoints": rng.permutation(NUM)[:68].reshape(1, 68) + 1,
        "frontmask2_idx": np.arange(10, 100).reshape(-1, 1) + 1,
        "skinmask": skin,
    }


@pytest.fixture
def bfm_file(tmp_path):
    mat = deep3d_mat(np.random.default_rng(0))
    path = tmp_path / "BFM_model_front.mat"
    savemat(path, mat)
    return path, mat


def test_loader_reproduces_deep3d_formulas(bfm_file):
    path, mat = bfm_file
    model = load_bfm(path)
    assert model.layout.total == 257 and model.coeff_dim == 257
    assert model.num_vertices == NUM and model.exp_range is None

    # A Deep3D 257-vector means the same thing here (models/bfm.py: split_coeff, compute_shape/texture).
    coeffs = torch.randn(3, 257) * 0.5
    parts = model.layout.split(coeffs)
    mean = mat["meanshape"].reshape(-1, 3)
    mean = (mean - mean.mean(axis=0)).reshape(1, -1)  # recenter=True
    c = coeffs.double().numpy()
    expected = (c[:, :80] @ mat["idBase"].T + c[:, 80:144] @ mat["exBase"].T.astype(np.float64) + mean).reshape(
        3, -1, 3
    )
    np.testing.assert_allclose(model.shape(parts.id, parts.exp).numpy(), expected, atol=1e-5)
    texture = ((c[:, 144:224] @ mat["texBase"].T + mat["meantex"]) / 255.0).reshape(3, -1, 3)
    np.testing.assert_allclose(model.albedo(parts.tex).numpy(), texture, atol=1e-5)

    np.testing.assert_array_equal(model.faces.numpy(), mat["tri"] - 1)
    np.testing.assert_array_equal(model.landmark_idx.numpy(), mat["keypoints"].ravel() - 1)
    np.testing.assert_array_equal(model.regions["skin"].numpy(), np.arange(20, 90))
    np.testing.assert_array_equal(model.regions["front"].numpy(), np.arange(10, 100))
    assert len(model.regions["face"]) == NUM and not model.has_uvs
    # Also found through load_face_model, as a file or as its folder.
    assert load_face_model(path).num_vertices == NUM
    assert load_face_model(path.parent).name == "bfm09-deep3d"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("idBase"), "no 'idBase'"),
        (lambda m: m.update(exBase=m["exBase"][:, :60]), "exBase is"),
        (lambda m: m.update(keypoints=m["keypoints"][:, :60]), "inconsistent shapes"),
        (lambda m: m.update(tri=m["tri"] + NUM), "tri has indices outside"),
    ],
)
def test_malformed_files_raise_one_line_input_errors(tmp_path, change, message):
    mat = deep3d_mat(np.random.default_rng(1))
    change(mat)
    savemat(tmp_path / "bad.mat", mat)
    with pytest.raises(InputError, match=message) as err:
        load_bfm(tmp_path / "bad.mat")
    assert "\n" not in str(err.value) and "Deep3DFaceRecon" in str(err.value)


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="BFM model not found .*Deep3DFaceRecon"):
        load_bfm(tmp_path / "BFM_model_front.mat")
    (tmp_path / "junk.mat").write_bytes(b"\x00" * 300)
    with pytest.raises(InputError, match="not a readable .mat"):
        load_face_model(tmp_path / "junk.mat")
