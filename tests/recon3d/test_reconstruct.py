"""Per-clip reconstruction end to end on a real clip, the saved `Reconstruction`, and the
detailed albedo (`recon3d.albedo`) on synthetic frames."""

from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.albedo import albedo_frames, albedo_to_tex, detailed_albedo, visible_vertices
from recon3d.errors import InputError
from recon3d.facemodel import Coeffs
from recon3d.facemodels import load_face_model
from recon3d.fit import ClipObservations, FitConfig, facing_camera, landmark_error, model_landmarks
from recon3d.reconstruct import Reconstruction, export_reconstruction, reconstruct_clip
from recon3d.track import TrackConfig, track_video
from recon3d.video import iter_frames, probe
from render.camera import PerspectiveCamera, camera_to_screen, model_to_camera, pose_vertices
from render.renderer import render_mesh
from render.shading import sh_shading, vertex_normals

TINY_FIT = FitConfig(landmark_steps=150, photometric_steps=3, render_size=64)


@pytest.fixture(scope="module")
def builtin():
    return load_face_model("builtin")


@pytest.fixture(scope="module")
def vox_reconstruction(clips, builtin, tmp_path_factory):
    """vox_00010 (106 frames, 224 x 224) reconstructed at a tiny setting and exported."""
    video = clips / "vox_00010.mp4"
    track = track_video(video, TrackConfig(crop_size=128), progress=False)
    recon, crops = reconstruct_clip(video, builtin, TINY_FIT, track=track, progress=False)
    out = tmp_path_factory.mktemp("reconstruct")
    paths = export_reconstruction(video, recon, builtin, out, progress=False)
    return video, track, recon, crops, paths


def test_reconstructs_a_real_clip(vox_reconstruction, builtin):
    _, track, recon, crops, _ = vox_reconstruction
    assert recon.num_frames == track.num_frames == 106 and crops.shape == (106, 128, 128, 3)
    assert recon.face_model == builtin.name and recon.num_vertices == builtin.num_vertices
    assert recon.coeffs.shape == (106, builtin.layout.total) and recon.coeffs.dtype == np.float32
    assert recon.albedo.shape == (builtin.num_vertices, 3) and 0 <= recon.albedo.min() and recon.albedo.max() <= 1
    assert recon.crop == track.crop and recon.camera == PerspectiveCamera.deep3d(128)
    # The mean face at its initial pose gives 0.16 and 11 dB here; this tiny fit (150 + 3 steps)
    # about 0.03 and 25 dB, the default 600 + 20 steps about 0.02 and 29 dB.
    print(f"landmark error {recon.landmark_error.mean():.4f}, skin PSNR {recon.psnr.mean():.1f} dB")
    assert recon.landmark_error.shape == recon.psnr.shape == (106,)
    assert recon.landmark_error.mean() < 0.05 and recon.landmark_error.max() < 0.08
    assert recon.psnr.mean() > 22
    # The speaker looks ~25 deg to the side but holds the head upright.
    roll = np.rad2deg(recon.coeffs[:, builtin.layout.slice("angle")][:, 2])
    assert np.median(np.abs(roll)) < 10


def test_coefficient_columns_follow_the_layout(vox_reconstruction, builtin):
    """The saved columns, read back through `layout`, reproduce the fit's own landmark error."""
    _, track, recon, _, _ = vox_reconstruction
    layout = builtin.layout
    ids = recon.coeffs[:, layout.slice("id")]
    assert layout.slice("trans").stop == recon.coeffs.shape[1] and layout.tex_dim == 0
    assert (ids == ids[:1]).all() and np.abs(ids).max() > 0  # one identity for the clip, fitted
    assert (recon.coeffs[:, layout.slice("trans")][:, 2] < 0).all()  # the head is further than the model origin
    coeffs = recon.split()
    face = builtin.subset("face")
    observed = torch.from_numpy(track.crop.frame_to_crop(track.ibug68)).float()
    errors = landmark_error(model_landmarks(face.subset("landmarks"), coeffs, recon.camera), observed)
    np.testing.assert_allclose(errors.numpy(), recon.landmark_error, rtol=1e-4, atol=1e-6)


def test_overlay_video_has_the_source_frames_and_audio(vox_reconstruction):
    video, _, recon, _, paths = vox_reconstruction
    assert [p.name for p in paths] == ["overlay.mp4", "face.ply", "face.glb", "coeffs.npz"]
    assert all(p.is_file() for p in paths)
    source, overlay = probe(video), probe(paths[0])
    # Two panels side by side at the source size: the textured fit, the bare geometry.
    assert (overlay.width, overlay.height) == (2 * source.width, source.height)
    assert overlay.has_audio and overlay.duration == pytest.approx(source.duration, abs=0.05)
    frames = list(iter_frames(paths[0]))
    assert len(frames) == recon.num_frames == 106
    original = next(iter_frames(video)).astype(np.float32)
    textured, grey = (np.abs(panel.astype(np.float32) - original).mean(-1) for panel in np.split(frames[0], 2, axis=1))
    for difference in (textured, grey):
        assert difference[:20, :20].mean() < 6  # the background is the source (H.264 noise aside)
        assert (difference > 10).mean() > 0.08  # the face is drawn over it
    assert textured.mean() < grey.mean()  # the textured fit looks more like the frame than bare geometry


def test_saved_reconstruction_round_trips(vox_reconstruction):
    _, _, recon, _, paths = vox_reconstruction
    loaded = Reconstruction.load(paths[-1])
    for name in ("coeffs", "albedo", "landmark_error", "psnr"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(recon, name))
    assert loaded.layout == recon.layout and loaded.crop == recon.crop
    assert (loaded.face_model, loaded.num_vertices, loaded.fps) == (recon.face_model, recon.num_vertices, recon.fps)
    assert loaded.camera == recon.camera


def _npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


@pytest.mark.parametrize(
    "case",
    [
        "text",
        "wrong_version",
        "no_version",
        "empty",
        "truncated",
        "missing_arrays",
    ],
)
def test_unreadable_reconstruction_raises_one_line_input_error(tmp_path, case):
    path = tmp_path / "coeffs.npz"
    if case == "text":
        path.write_text("not a reconstruction")
    elif case == "wrong_version":
        _npz(path, format_version=2, coeffs=np.zeros((1, 3), np.float32))
    elif case == "no_version":
        _npz(path, coeffs=np.zeros((1, 3), np.float32))
    elif case == "empty":
        path.touch()
    elif case == "truncated":
        path.write_bytes(_npz(tmp_path / "whole.npz", format_version=1, coeffs=np.zeros((100, 81))).read_bytes()[:300])
    elif case == "missing_arrays":
        _npz(path, format_version=1)
    with pytest.raises(InputError, match="rerun `talkface reconstruct`") as err:
        Reconstruction.load(path)
    assert "\n" not in str(err.value)
    if case == "wrong_version":
        assert "format 2, expected 1" in str(err.value)


# ---------------------------------------------------------------- detailed albedo


def _coeffs(model, angle_deg, exp, gamma=None) -> Coeffs:
    zeros = model.layout.zeros(len(angle_deg))
    return Coeffs(
        id=zeros.id,
        exp=exp,
        tex=zeros.tex,
        angle=torch.deg2rad(torch.tensor(angle_deg, dtype=torch.float32)),
        gamma=zeros.gamma if gamma is None else gamma,
        trans=torch.tensor([[0.0, 0.0, -3.0]]).expand(len(angle_deg), 3),
    )


def _exp_with_norms(model, norms) -> torch.Tensor:
    """(T, exp_dim) expressions whose prior-scaled norms are `norms`."""
    direction = torch.randn(model.layout.exp_dim, generator=torch.Generator().manual_seed(0))
    return torch.tensor(norms)[:, None] * direction / direction.norm() * model.exp_prior_std


def test_albedo_frames_picks_the_frontal_neutral_frame(builtin):
    # |pitch| + |yaw| = 35, 23, 40, 3, 24 deg (roll does not count); expression norms 1, 2, 1.5, 0.05, 1.2.
    angles = [[10, 25, 0], [-8, 15, 5], [5, -35, 0], [1, -2, 20], [12, 12, 0]]
    coeffs = _coeffs(builtin, angles, _exp_with_norms(builtin, [1.0, 2.0, 1.5, 0.05, 1.2]))
    assert albedo_frames(builtin, coeffs, 1).tolist() == [3]
    best3 = albedo_frames(builtin, coeffs, 3).tolist()
    assert best3[0] == 3 and set(best3) == {0, 3, 4}  # rank sums 0, 4, 4; frames 1 (5) and 2 (7) out
    assert sorted(albedo_frames(builtin, coeffs, 50).tolist()) == [0, 1, 2, 3, 4]  # count capped at T


def test_albedo_frames_ties_do_not_outvote_the_other_criterion(builtin):
    angles = [[10, 25, 0], [-8, 15, 5], [5, -35, 0], [12, 12, 0], [1, -2, 20]]  # the frontal frame last
    neutral = _coeffs(builtin, angles, torch.zeros(5, builtin.layout.exp_dim))
    assert albedo_frames(builtin, neutral, 1).tolist() == [4]
    turned = _coeffs(builtin, [[0, 10, 0]] * 5, _exp_with_norms(builtin, [1.0, 2.0, 1.5, 1.2, 0.05]))
    assert albedo_frames(builtin, turned, 1).tolist() == [4]


def test_detailed_albedo_recovers_the_rendered_albedo(builtin):
    """A frontal render of a known per-vertex albedo under known light: where the frame sees a
    vertex head-on, the albedo comes back; where it does not see it, the fitted one is kept."""
    face = builtin.subset("face")
    gamma = torch.zeros(1, 27)
    gamma[:, 1::9], gamma[:, 2::9] = 0.2, 0.15
    coeffs = _coeffs(face, [[0, 0, 0]], torch.zeros(1, face.layout.exp_dim), gamma)
    v = face.mean_shape
    albedo = 0.5 + 0.2 * torch.stack([(3 * v[:, 0]).sin(), (3 * v[:, 1]).cos(), (2 * v[:, 0] + v[:, 1]).sin()], -1)
    camera = PerspectiveCamera.deep3d(224)
    vertices = pose_vertices(face.shape(coeffs.id, coeffs.exp), coeffs.angle, coeffs.trans)
    normals = vertex_normals(vertices, face.faces)
    image = render_mesh(vertices, face.faces, albedo * sh_shading(normals, gamma), camera).image
    obs = ClipObservations((image.clamp(0, 1) * 255).round().byte(), torch.zeros(1, 68, 2))  # landmarks unused
    fitted = torch.full_like(albedo, 0.3)
    estimate = detailed_albedo(face, coeffs, fitted, obs, num_frames=1)
    screen = camera_to_screen(model_to_camera(vertices, camera), camera)
    visible = visible_vertices(screen, face.faces, 224)[0]
    head_on = visible & (facing_camera(vertices, normals, camera)[0] > 0.8)
    error = (estimate - albedo).abs().max(-1).values
    assert head_on.sum() > 100 and error[head_on].median() < 0.01
    torch.testing.assert_close(estimate[~visible], fitted[~visible])
    assert (~visible).sum() > 10


def test_albedo_to_tex_recovers_texture_coefficients():
    from tests.recon3d.test_facemodel import tiny_model

    model = tiny_model(tex_dim=2)
    tex = torch.tensor([0.7, -1.2])
    albedo = model.albedo(tex)
    torch.testing.assert_close(albedo_to_tex(model, albedo, weight=0.0), tex, atol=1e-4, rtol=0)
    # The prior shrinks towards the mean albedo, never past it.
    shrunk = albedo_to_tex(model, albedo, weight=1.0)
    assert (shrunk.abs() < tex.abs()).all() and (shrunk * tex > 0).all()
