import numpy as np
import pytest
import torch

from recon3d.errors import InputError
from recon3d.facemodel import COEFF_NAMES, CoeffLayout, Coeffs, FaceModel
from recon3d.facemodels.geometry import face_normals


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two counter-clockwise (seen from +z) triangles per cell of a rows x cols vertex grid."""
    faces = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            faces += [(a, b, e), (a, e, d)]
    return np.array(faces)


def tiny_model(seed: int = 0, id_dim: int = 4, exp_dim: int = 3, tex_dim: int = 2) -> FaceModel:
    """A 10 x 10 grid (y up, x right, a bump toward +z) with random bases; landmarks in rows 0-7."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:10, 0:10] / 9.0
    mean = np.stack([x.ravel(), y.ravel(), 0.2 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.1).ravel()], axis=1)
    return FaceModel(
        "tiny",
        mean,
        rng.normal(size=(100, 3, id_dim)),
        rng.normal(size=(100, 3, exp_dim)),
        grid_faces(10, 10),
        rng.permutation(80)[:68],
        tex_mean=rng.uniform(0.2, 0.8, (100, 3)),
        tex_basis=rng.normal(size=(100, 3, tex_dim)) * 0.1,
        uvs=mean[:, :2],
        regions={"skin": np.arange(20, 60), "front": np.arange(80), "top": np.arange(80, 100)},
        exp_names=("a", "b", "c"),
        exp_range=(0.0, 1.0),
        exp_prior_std=0.5,
        info={"note": "test"},
    )


def test_bfm_layout_is_deep3d_257():
    layout = CoeffLayout(80, 64, 80)
    assert layout.total == 257
    starts = {name: (layout.slice(name).start, layout.slice(name).stop) for name in COEFF_NAMES}
    assert starts == {
        "id": (0, 80),
        "exp": (80, 144),
        "tex": (144, 224),
        "angle": (224, 227),
        "gamma": (227, 254),
        "trans": (254, 257),
    }
    assert [name for name, _ in layout.sizes] == list(COEFF_NAMES)
    with pytest.raises(KeyError):
        layout.slice("pose")


def test_split_join_round_trip():
    layout = CoeffLayout(5, 7, 0)
    x = torch.randn(2, 3, layout.total)
    coeffs = layout.split(x)
    assert coeffs.id.shape == (2, 3, 5) and coeffs.tex.shape == (2, 3, 0) and coeffs.gamma.shape == (2, 3, 27)
    assert coeffs.batch_shape == (2, 3)
    torch.testing.assert_close(layout.join(coeffs), x)
    torch.testing.assert_close(coeffs.trans, x[..., -3:])
    # Batch indexing, detach and zeros.
    torch.testing.assert_close(layout.join(coeffs[1, 2]), x[1, 2])
    assert coeffs[:, 1:].batch_shape == (2, 2)
    assert not layout.split(x.requires_grad_()).detach().angle.requires_grad
    zeros = layout.zeros(4)
    assert isinstance(zeros, Coeffs) and zeros.exp.shape == (4, 7) and float(layout.join(zeros).abs().sum()) == 0
    assert layout.zeros().angle.shape == (3,)
    with pytest.raises(ValueError):
        layout.split(torch.zeros(3, layout.total + 1))
    with pytest.raises(ValueError):
        CoeffLayout(4, 7, 0).join(coeffs)


def test_shape_and_albedo_match_a_naive_loop():
    model = tiny_model()
    ids, exps, texs = torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 2)
    shape, albedo = model.shape(ids, exps), model.albedo(texs)
    assert shape.shape == (2, 100, 3) and albedo.shape == (2, 100, 3)
    for b in range(2):
        for v in range(0, 100, 7):
            expected = model.mean_shape[v].clone()
            for k in range(4):
                expected += model.id_basis[v, :, k] * ids[b, k]
            for k in range(3):
                expected += model.exp_basis[v, :, k] * exps[b, k]
            torch.testing.assert_close(shape[b, v], expected, rtol=1e-5, atol=1e-5)
            tex = model.tex_mean[v] + sum(model.tex_basis[v, :, k] * texs[b, k] for k in range(2))
            torch.testing.assert_close(albedo[b, v], tex, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.albedo(), model.tex_mean)
    # One identity broadcasts over a batch of expressions; gradients reach the coefficients.
    ids = torch.randn(1, 4, requires_grad=True)
    out = model.shape(ids, exps)
    torch.testing.assert_close(out[1], model.shape(ids[0], exps[1]))
    out.sum().backward()
    assert ids.grad is not None and ids.grad.shape == (1, 4)
    torch.testing.assert_close(model.landmarks(shape), shape[:, model.landmark_idx])
    with pytest.raises(ValueError):
        model.shape(torch.zeros(1, 5), torch.zeros(1, 3))


def test_regions_and_region_faces():
    model = tiny_model()
    assert set(model.regions) == {"face", "skin", "front", "top", "landmarks"}
    assert len(model.regions["face"]) == 100  # defaults to every vertex
    torch.testing.assert_close(model.regions["landmarks"], model.landmark_idx.sort().values)
    small = model.subset("landmarks")
    assert small.num_vertices == 68
    torch.testing.assert_close(small.landmarks(small.mean_shape), model.landmarks(model.mean_shape))
    mask = model.region_mask("skin")
    faces = model.region_faces("skin")
    assert mask[faces].all()
    assert len(faces) == int(mask[model.faces].all(dim=1).sum())
    assert len(model.region_faces("face")) == model.num_faces
    with pytest.raises(KeyError, match="no region 'mouth'"):
        model.region_faces("mouth")
    # Winding: every triangle of the grid faces +z.
    assert (face_normals(model.mean_shape.numpy(), model.faces.numpy())[:, 2] > 0).all()


def test_subset_keeps_landmarks_and_triangles_consistent():
    model = tiny_model()
    sub = model.subset("front")
    keep = model.regions["front"]
    assert sub.num_vertices == 80 and sub.layout == model.layout and sub.exp_names == model.exp_names
    torch.testing.assert_close(sub.landmarks(sub.mean_shape), model.landmarks(model.mean_shape))
    ids, exps = torch.randn(3, 4), torch.randn(3, 3)
    torch.testing.assert_close(sub.shape(ids, exps), model.shape(ids, exps)[:, keep])
    # The same triangles (as vertex positions), only those inside the region.
    full = {tuple(map(tuple, model.mean_shape[f].tolist())) for f in model.region_faces("front")}
    part = {tuple(map(tuple, sub.mean_shape[f].tolist())) for f in sub.faces}
    assert full == part and len(sub.faces) == len(model.region_faces("front"))
    # Regions are intersected, empty ones dropped.
    assert set(sub.regions) == {"face", "skin", "front", "landmarks"}
    torch.testing.assert_close(sub.mean_shape[sub.regions["skin"]], model.mean_shape[model.regions["skin"]])
    torch.testing.assert_close(sub.uvs, model.uvs[keep])
    with pytest.raises(ValueError, match="outside region 'top'"):
        model.subset("top")


def test_buffers_follow_the_module_and_stay_out_of_state_dict():
    model = tiny_model().to(torch.float64)
    assert model.mean_shape.dtype == torch.float64 and model.faces.dtype == torch.int64
    moved = tiny_model().to("meta")
    assert moved.id_basis.is_meta and moved.regions["skin"].is_meta and moved.region_faces("skin").is_meta
    assert len(tiny_model().state_dict()) == 0


def test_save_load_round_trip(tmp_path):
    model = tiny_model()
    model.save(tmp_path / "tiny.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.npz"]  # no temporary file left
    loaded = FaceModel.load(tmp_path / "tiny.npz")
    for key in ("mean_shape", "id_basis", "exp_basis", "tex_mean", "tex_basis", "faces", "landmark_idx", "uvs"):
        torch.testing.assert_close(getattr(loaded, key), getattr(model, key))
    assert {k: v.tolist() for k, v in loaded.regions.items()} == {k: v.tolist() for k, v in model.regions.items()}
    assert loaded.metadata() == model.metadata()
    assert loaded.exp_range == (0.0, 1.0) and loaded.exp_prior_std == 0.5 and loaded.info == {"note": "test"}
    # Plain arrays: readable without pickles.
    with np.load(tmp_path / "tiny.npz", allow_pickle=False) as data:
        assert data["mean_shape"].dtype == np.float32
    # A model without texture or UVs round-trips too.
    bare = FaceModel("bare", model.mean_shape, model.id_basis, model.exp_basis, model.faces, model.landmark_idx)
    bare.save(tmp_path / "bare.npz", compress=True)
    again = FaceModel.load(tmp_path / "bare.npz")
    assert again.layout.tex_dim == 0 and not again.has_uvs and again.exp_range is None
    assert again.exp_names == ("pc0", "pc1", "pc2")
    torch.testing.assert_close(again.albedo(torch.zeros(2, 0)), again.tex_mean.expand(2, -1, -1))


def test_load_errors_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError) as missing:
        FaceModel.load(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError) as junk:
        FaceModel.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", format_version=1, mean_shape=np.zeros((3, 3)))
    with pytest.raises(InputError) as partial:
        FaceModel.load(tmp_path / "partial.npz")
    np.savez(tmp_path / "future.npz", format_version=99)
    with pytest.raises(InputError, match="format 99") as future:
        FaceModel.load(tmp_path / "future.npz")
    for err in (missing, junk, partial, future):
        assert "\n" not in str(err.value) and "convert the face model again" in str(err.value)
