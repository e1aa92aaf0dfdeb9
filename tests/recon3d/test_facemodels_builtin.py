"""The shipped built-in model, its builder on synthetic meshes, and `load_face_model`'s specs."""

import itertools
from collections import Counter
from importlib.resources import files

import numpy as np
import pytest
import torch

from recon3d.errors import InputError
from recon3d.facemodels import build_mediapipe_face_model, load_builtin, load_face_model
from recon3d.facemodels.builtin import align_similarity, mediapipe_triangles
from recon3d.facemodels.geometry import face_normals, orient_faces
from recon3d.landmarks import IBUG68_FROM_MESH


@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


def test_builtin_asset(builtin):
    asset = files("recon3d") / "assets" / "mediapipe_face.npz"
    assert asset.stat().st_size < 1_000_000
    assert builtin.name == "mediapipe-builtin" and builtin.num_vertices == 468 and builtin.num_faces == 852
    assert builtin.mean_shape.dtype == torch.float32 and builtin.exp_range is None
    assert builtin.id_prior_std == builtin.exp_prior_std == 1.0 and builtin.layout.tex_dim == 0
    np.testing.assert_array_equal(builtin.landmark_idx.numpy(), IBUG68_FROM_MESH)
    lm = builtin.landmarks(builtin.mean_shape).numpy()
    assert np.linalg.norm(lm[36] - lm[45]) == pytest.approx(0.93, abs=1e-4)
    assert lm[30, 2] == pytest.approx(1.0, abs=1e-5) and abs(lm[30, 0]) < 0.02  # nose tip ahead, centred
    assert lm[36, 0] < 0 < lm[45, 0] and lm[:, 1].argmin() == 8
    # Faces wound counter-clockwise from outside: the front looks at the camera (+z).
    normals = face_normals(builtin.mean_shape.numpy(), builtin.faces.numpy())
    assert (normals[:, 2] > 0).mean() > 0.97 and normals.mean(axis=0)[2] > 0.6
    assert 150 < len(builtin.regions["skin"]) < 400
    assert builtin.uvs.shape == (468, 2) and builtin.uvs.min() >= 0 and builtin.uvs.max() <= 1
    assert 0.9 < builtin.info["exp_explained"] <= 1 and len(builtin.info["id_ratio"]) == builtin.layout.id_dim


def test_mediapipe_triangles_form_an_oriented_surface(builtin):
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    faces = builtin.faces.numpy()
    assert {tuple(sorted(t)) for t in faces.tolist()} == {tuple(t) for t in mediapipe_triangles().tolist()}
    uses = Counter(tuple(sorted(e)) for t in faces.tolist() for e in itertools.combinations(t, 2))
    assert set(uses) == {tuple(sorted(e)) for e in FACEMESH_TESSELATION}  # every edge, no other
    assert max(uses.values()) == 2
    # A disk with three holes (eyes, mouth): V - E + F = 1 - 3, and 88 boundary edges.
    assert 468 - len(uses) + len(faces) == -2 and sum(n == 1 for n in uses.values()) == 88
    # Consistent winding: every inner edge is walked once each way.
    directed = Counter((t[i], t[(i + 1) % 3]) for t in faces.tolist() for i in range(3))
    assert max(directed.values()) == 1
    # orient_faces repairs randomly flipped triangles.
    flipped = faces.copy()
    flip = np.random.default_rng(0).random(len(faces)) < 0.5
    flipped[flip] = flipped[flip][:, ::-1]
    np.testing.assert_array_equal(orient_faces(flipped, builtin.mean_shape.numpy(), np.zeros(3)), faces)


def expression_directions(mean: np.ndarray) -> np.ndarray:
    """(2, 468, 3) local motions of the lower face (jaw drop, mouth widening), decimetres."""
    lm = mean[IBUG68_FROM_MESH]
    below = np.clip((lm[57, 1] - mean[:, 1]) / (lm[57, 1] - lm[8, 1]), 0, 1)
    jaw = np.zeros_like(mean)
    jaw[:, 1] = -0.03 * below
    near_mouth = np.exp(-np.sum((mean - lm[[48, 54]].mean(axis=0)) ** 2, axis=1) / 0.02)
    widen = np.zeros_like(mean)
    widen[:, 0] = 0.05 * (mean[:, 0] - lm[[48, 54]].mean(axis=0)[0]) * near_mouth
    return np.stack([jaw, widen])


def synthetic_clips(builtin, rng):
    """5 clips of 40 frames: known identity/expression offsets, random similarity poses, in pixels.

    Returns the clips and the within-clip variance of the expression offsets (dm^2, summed).
    """
    mean = builtin.mean_shape.numpy().astype(np.float64)
    id_dirs = builtin.id_basis.numpy()[..., :2].transpose(2, 0, 1)
    exp_dirs = expression_directions(mean)
    clips, variance = [], 0.0
    for _ in range(5):
        identity = mean + np.tensordot(rng.normal(size=2), id_dirs, axes=1)
        coeffs = rng.normal(size=(40, 2))
        frames = identity + np.tensordot(coeffs, exp_dirs, axes=1)
        variance += (np.tensordot(coeffs - coeffs.mean(axis=0), exp_dirs, axes=1) ** 2).sum() / (5 * 40 - 5)
        angles = rng.normal(scale=0.15, size=(40, 3))
        meshes = []
        for frame, (a, b, c) in zip(frames, angles):
            rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
            ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
            rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
            posed = frame @ (rz @ ry @ rx).T * rng.uniform(200, 400) + [*rng.uniform(100, 300, 2), 0]
            pixels = posed * [1, -1, -1]
            meshes.append(np.concatenate([pixels, pixels[:10]]))  # + 10 iris points, ignored
        clips.append(np.array(meshes, dtype=np.float32))
    return clips, variance


def test_builder_recovers_a_synthetic_model(builtin):
    clips, variance = synthetic_clips(builtin, np.random.default_rng(0))
    model = build_mediapipe_face_model(clips, id_dim=8, exp_dim=4)
    assert model.layout.id_dim == 4  # capped at clips - 1
    lm = model.landmarks(model.mean_shape).numpy()
    assert np.linalg.norm(lm[36] - lm[45]) == pytest.approx(0.93, abs=1e-4) and lm[30, 2] == pytest.approx(1.0)
    # Two expression directions were used: two modes explain everything.
    assert sum(model.info["exp_ratio"][:2]) > 0.999
    # The mean is the generating face up to a similarity, and frontal like it.
    mean = model.mean_shape.numpy().astype(np.float64)
    aligned = align_similarity(builtin.mean_shape.numpy()[None].astype(np.float64), mean, np.ones(468))[0]
    assert np.abs(aligned - mean).max() < 0.05
    assert (
        np.abs(
            mean - aligned.mean(axis=0) - (builtin.mean_shape.numpy() - builtin.mean_shape.numpy().mean(axis=0))
        ).max()
        < 0.08
    )
    # Unit-variance coefficients: the modes' squared norms add up to the offsets' variance.
    assert (model.exp_basis.numpy() ** 2).sum() == pytest.approx(variance, rel=0.1)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKFACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TALKFACE_FACE_MODEL", raising=False)
    return tmp_path / "home"


def test_load_face_model_specs(empty_home, tmp_path, monkeypatch, builtin):
    assert load_face_model().name == "mediapipe-builtin"  # nothing at the default location
    assert load_face_model("default").name == load_face_model("mediapipe").name == "mediapipe-builtin"
    with pytest.raises(InputError) as ict:
        load_face_model("ict")
    message = str(ict.value)
    assert "ICT-FaceKit not found at" in message and str(empty_home) in message and "\n" not in message
    assert "https://github.com/ICT-VGL/ICT-FaceKit" in message and "--face-model builtin" in message
    with pytest.raises(InputError, match="face model not found at .*builtin"):
        load_face_model(tmp_path / "nowhere")
    (tmp_path / "model.obj").write_text("v 0 0 0\n")
    with pytest.raises(InputError, match="not a face model"):
        load_face_model(tmp_path / "model.obj")
    # $TALKFACE_FACE_MODEL names the default; a converted .npz loads as it is.
    builtin.save(tmp_path / "copy.npz")
    monkeypatch.setenv("TALKFACE_FACE_MODEL", str(tmp_path / "copy.npz"))
    assert load_face_model().num_vertices == 468
    monkeypatch.setenv("TALKFACE_FACE_MODEL", str(tmp_path / "gone"))
    with pytest.raises(InputError, match="not found"):
        load_face_model()
    assert not empty_home.exists()  # nothing written for the built-in model
