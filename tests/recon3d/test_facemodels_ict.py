"""ICT-FaceKit: the real archive from ../shared (skipped where absent) and a tiny fake FaceXModel."""

import json
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from personalize.cli import main
from recon3d.errors import InputError
from recon3d.facemodels import load_face_model, load_ict
from recon3d.facemodels.geometry import face_normals
from recon3d.facemodels.ict import NUM_IDENTITIES, read_obj_vertices


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A fresh $TALKFACE_HOME, so no cache leaks into ~."""
    path = tmp_path_factory.mktemp("talkface_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKFACE_HOME", str(path))
        patch.delenv("TALKFACE_FACE_MODEL", raising=False)
        yield path


# ---------------------------------------------------------------- the real model
# (`ict_folder`, the unpacked archive, comes from tests/conftest.py)


@pytest.fixture(scope="module")
def ict(ict_folder, home):
    """(model, seconds to convert, seconds to load from the cache)."""
    start = time.perf_counter()
    converted = load_ict(ict_folder)
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    cached = load_ict(ict_folder)
    cached_s = time.perf_counter() - start
    torch.testing.assert_close(cached.exp_basis, converted.exp_basis)
    return cached, convert_s, cached_s


def test_ict_counts_and_regions(ict):
    model = ict[0]
    assert model.num_vertices == 26719 and model.layout.id_dim == NUM_IDENTITIES and model.layout.exp_dim == 53
    assert model.layout.tex_dim == 0 and model.exp_range == (0.0, 1.0) and "jawOpen" in model.exp_names
    assert model.num_faces == 48836 and model.uvs.shape == (26719, 2)
    regions = model.regions
    assert len(regions["face"]) == 9409 and set(regions) >= {"skin", "mouth_interior", "teeth", "eyes"}
    assert np.isin(regions["skin"], regions["face"]).all() and 3000 < len(regions["skin"]) < 9409
    for part in ("mouth_interior", "teeth", "eyes"):
        assert not np.isin(regions[part], regions["face"]).any() and len(model.region_faces(part)) > 1000
    # Identity modes are one std each: a few millimetres RMS, decreasing.
    rms = model.id_basis.norm(dim=1).pow(2).mean(dim=0).sqrt()
    assert 0.01 < rms[0] < 0.1 and rms[0] > rms[10] > rms[99]
    sub = model.subset("face")
    assert sub.num_vertices == 9409 and len(sub.faces) == len(model.region_faces("face"))
    torch.testing.assert_close(sub.landmarks(sub.mean_shape), model.landmarks(model.mean_shape))


def test_ict_landmarks_have_ibug_meaning(ict):
    model = ict[0]
    shape = model.mean_shape.numpy()
    lm = model.landmarks(model.mean_shape).numpy()
    face = shape[model.regions["face"].numpy()]
    # 30 is the nose tip: the face's most forward point lies within 5 mm of it; the origin sits 1 dm behind.
    assert np.linalg.norm(face[face[:, 2].argmax()] - lm[30]) < 0.05
    assert lm[30, 2] == pytest.approx(1.0, abs=1e-5)
    # Eye and mouth corners (36 subject's right = -x, 45 left) are mirror images to 2 mm (they are
    # the ICT vertices nearest the tracker's points, not mirrored by construction); the jaw ends
    # only by side: the tracker's jaw points were fitted to dlib and are not mirror vertices.
    for right, left in ((36, 45), (39, 42), (48, 54)):
        assert lm[right, 0] < 0 < lm[left, 0]
        np.testing.assert_allclose(lm[right] * [-1, 1, 1], lm[left], atol=0.02)
    assert lm[0, 0] < 0 < lm[16, 0]
    assert np.linalg.norm(lm[36] - lm[45]) == pytest.approx(0.89, abs=0.02)
    assert lm[8, 1] == pytest.approx(lm[:, 1].min(), abs=0.02)  # chin lowest (to 2 mm)
    assert (lm[17:27, 1].min() > lm[36:48, 1].max()) and lm[27, 1] > lm[30, 1] > lm[51, 1] > lm[57, 1]


def test_ict_front_faces_point_to_the_camera(ict):
    model = ict[0]
    normals = face_normals(model.mean_shape.numpy(), model.region_faces("skin").numpy())
    assert (normals[:, 2] > 0).mean() > 0.97
    assert normals.mean(axis=0)[2] > 0.6


def test_ict_expressions_act_as_named(ict):
    model = ict[0]
    neutral = model.landmarks(model.mean_shape)

    def moved(name: str) -> torch.Tensor:
        exp = torch.zeros(1, 53)
        exp[0, model.exp_names.index(name)] = 1.0
        return (model.landmarks(model.shape(torch.zeros(1, 100), exp)) - neutral)[0]

    jaw = moved("jawOpen")
    assert jaw[8, 1] < -0.2 and jaw[57, 1] < -0.1 and jaw[51, 1].abs() < jaw[57, 1].abs()
    blink = moved("eyeBlink_L")  # ARKit's left = the subject's left = iBUG 42-47 (+x)
    assert blink[43, 1] < -0.05 and blink[37].abs().max() < 1e-4


def test_ict_is_converted_once_then_read_from_the_cache(ict, ict_folder, home):
    _, convert_s, cached_s = ict
    print(f"ICT-FaceKit: convert {convert_s:.2f} s, cached load {cached_s:.3f} s")  # timings: docs/benchmarks.md
    (cache,) = (home / "cache").glob("ict-*.npz")
    written = cache.stat().st_mtime_ns
    load_ict(ict_folder)
    assert cache.stat().st_mtime_ns == written


def test_default_location_finds_ict(ict, ict_folder, home):
    target = home / "facemodels" / "ict-facekit" / "FaceXModel"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(ict_folder)
    try:
        assert load_face_model().name == "ict-facekit"
        assert load_face_model("ict").num_vertices == 26719
    finally:
        target.unlink()
    assert len(list((home / "cache").glob("ict-*.npz"))) == 1  # same folder, same cache


# ---------------------------------------------------------------- a tiny fake FaceXModel


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKFACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TALKFACE_FACE_MODEL", raising=False)
    return tmp_path / "home"


def write_fake_ict(folder: Path, seed: int = 0, expressions=("jawOpen", "eyeBlink_L")) -> Path:
    """A 10 x 10 M_Face grid (cm) plus a small back head, same file layout as FaceXModel."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:10, 0:10]
    neutral = np.stack([x.ravel() - 4.5, 4.5 - y.ravel(), np.zeros(100)], axis=1) * 1.5
    back = neutral[:20] - [0, 0, 8]
    vertices = np.concatenate([neutral, back])
    # Counter-clockwise seen from +z: top-left, bottom-left, bottom-right, top-right.
    quads = [(r * 10 + c, r * 10 + c + 10, r * 10 + c + 11, r * 10 + c + 1) for r in range(9) for c in range(9)]

    def write(name: str, verts: np.ndarray) -> None:
        lines = ["# fake", "mtllib x.mtl", *(f"v {a:g} {b:g} {c:g}" for a, b, c in verts), "vt 0.5 0.5"]
        lines += ["usemtl M_Face", *(f"f {' '.join(f'{i + 1}/1' for i in quad)}" for quad in quads)]
        lines += ["usemtl M_BackHead", *(f"f {a}/1 {a + 1}/1 {a + 11}/1 {a + 10}/1" for a in range(101, 110))]
        (folder / f"{name}.obj").write_text("\n".join(lines) + "\n")

    write("generic_neutral_mesh", vertices)
    for i in range(NUM_IDENTITIES):
        write(f"identity{i:03d}", vertices + rng.normal(size=vertices.shape) * 0.1 / (i + 1))
    for name in expressions:
        write(name, vertices + rng.normal(size=vertices.shape) * 0.2)
    landmarks = rng.permutation(100)[:68]
    landmarks[[30, 36, 45, 31, 33, 35]] = [44, 22, 27, 53, 54, 56]  # roughly where they belong
    (folder / "vertex_indices.json").write_text(
        json.dumps(
            {
                "expressions": list(expressions),
                "idx_to_landmark_verts": landmarks.tolist(),
                "idx_to_rigid_verts": list(range(10)),
                "idx_to_fitting_verts": list(range(100)),
            }
        )
    )
    return folder


def test_fake_folder_converts_with_ict_conventions(tmp_path, fake_home):
    folder = write_fake_ict(tmp_path / "FaceXModel")
    model = load_face_model(folder)
    assert model.num_vertices == 120 and model.layout.exp_dim == 2 and model.exp_names == ("jawOpen", "eyeBlink_L")
    neutral, jaw = read_obj_vertices(folder / "generic_neutral_mesh.obj"), read_obj_vertices(folder / "jawOpen.obj")
    # cm -> dm, basis = mesh - neutral, one origin shift for the mean.
    np.testing.assert_allclose(model.exp_basis[:, :, 0].numpy(), (jaw - neutral) * 0.1, atol=1e-6)
    shift = neutral * 0.1 - model.mean_shape.numpy()
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-6)
    assert model.num_faces == 2 * (81 + 9) and len(model.region_faces("face")) == 162
    assert "mouth_interior" in model.regions  # present even when empty (no gums in this fake)


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archives_are_unpacked_converted_and_cached(tmp_path, fake_home, kind):
    write_fake_ict(tmp_path / "pack" / "ict-facekit" / "FaceXModel")
    archive = tmp_path / f"ict.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as out:
            for path in (tmp_path / "pack").rglob("*"):
                out.write(path, path.relative_to(tmp_path / "pack"))
    else:
        with tarfile.open(archive, "w:gz") as out:
            out.add(tmp_path / "pack" / "ict-facekit", "ict-facekit")
    model = load_face_model(archive)
    assert model.num_vertices == 120 and len(list((fake_home / "cache").glob("ict-archive-*.npz"))) == 1
    assert not list((fake_home / "cache").glob(".unpack-*"))  # the unpacked copy is gone
    torch.testing.assert_close(load_face_model(archive).mean_shape, model.mean_shape)


def test_broken_folders_raise_one_line_input_errors(tmp_path, fake_home):
    folder = write_fake_ict(tmp_path / "a" / "FaceXModel")
    (folder / "identity042.obj").unlink()
    with pytest.raises(InputError, match="identity042.obj is missing") as missing:
        load_face_model(folder)
    folder = write_fake_ict(tmp_path / "b" / "FaceXModel")
    text = (folder / "jawOpen.obj").read_text().replace("v ", "vx ", 3).replace("vx ", "v ", 1)
    (folder / "jawOpen.obj").write_text(text)
    with pytest.raises(InputError, match="jawOpen.obj") as malformed:
        load_face_model(folder)
    with pytest.raises(InputError, match="ICT-FaceKit not found .*github.com/ICT-VGL/ICT-FaceKit.*builtin") as absent:
        load_face_model(tmp_path)
    for err in (missing, malformed, absent):
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", ["random", "text", "empty", "truncated", "random_zip"])
def test_a_file_that_is_no_archive_is_refused_in_one_line(tmp_path, fake_home, content):
    archive = tmp_path / ("ict.zip" if content == "random_zip" else "ict.tar.xz")
    if content in ("random", "random_zip"):
        archive.write_bytes(np.random.default_rng(0).bytes(4000))
    elif content == "text":
        archive.write_text("not an archive\n")
    elif content == "empty":
        archive.write_bytes(b"")
    else:
        write_fake_ict(tmp_path / "pack" / "ict-facekit" / "FaceXModel")
        with tarfile.open(tmp_path / "whole.tar.xz", "w:xz") as out:
            out.add(tmp_path / "pack" / "ict-facekit", "ict-facekit")
        archive.write_bytes((tmp_path / "whole.tar.xz").read_bytes()[:2000])
    with pytest.raises(InputError) as refused:
        load_face_model(archive)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{archive}: not a readable face model archive (")
    assert message.endswith(
        "give the ICT-FaceKit archive as downloaded from https://github.com/ICT-VGL/ICT-FaceKit (a .tar.xz, "
        ".tar.gz, .tgz, .tar or .zip holding FaceXModel) or its unpacked FaceXModel folder, or use --face-model builtin"
    )
    assert not list((fake_home / "cache").glob(".unpack-*")) and not list((fake_home / "cache").glob("*.npz"))


def test_the_cli_says_a_random_face_model_archive_in_one_line(tmp_path, fake_home, capsys):
    archive = tmp_path / "x.tar.xz"
    archive.write_bytes(np.random.default_rng(0).bytes(4000))
    output = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path / "clip.mp4"), "-o", str(output), "--face-model", str(archive)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"talkface: error: {archive}: not a readable face model archive (not a tar file, plain or compressed); "
        "give the ICT-FaceKit archive as downloaded from https://github.com/ICT-VGL/ICT-FaceKit (a .tar.xz, "
        ".tar.gz, .tgz, .tar or .zip holding FaceXModel) or its unpacked FaceXModel folder, or use --face-model builtin"
    ]
    assert not output.exists()
