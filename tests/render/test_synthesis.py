"""Image-based face synthesis: the warp's geometry on synthetic renders, the smooth fill past the
face, the mouth opening's cap and its fill, mouth retrieval, and every face model."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from recon3d.crop import CropTransform
from recon3d.facemodels.geometry import points_in_polygon
from recon3d.reconstruct import front_faces
from render.camera import PerspectiveCamera, pose_vertices
from render.composite import image_to_uint8
from render.face import MOUTH_SHADOW, SHADOW_SHARE, opening_shadow, paint_mouth
from render.rasterize import RasterConfig, rasterize
from render.renderer import render_mesh
from render.synthesis import FaceWarper, boundary_loops, fill_opening, fill_smooth, mouth_loop
from tests.render.conftest import neutral, opening_exp

CROP = CropTransform(x0=30.0, y0=12.0, side=200.0, size=128, frame_width=280, frame_height=250)
CAMERA = PerspectiveCamera.deep3d(128)


def window_grid(warper: FaceWarper) -> np.ndarray:
    """(h, w, 2) the window's pixels in cv2's frame coordinates: what an identity map holds."""
    height, width = warper.window_size
    x0, y0 = warper.window[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs + x0, ys + y0], -1)


def test_the_warp_of_a_face_onto_itself_is_the_identity(builtin):
    warper = FaceWarper(builtin, CROP, CAMERA)
    coeffs = neutral(builtin, trans=[0.05, -0.1, 0.2], angle=[0.05, 0.1, -0.05])
    warp = warper.warps(coeffs, coeffs, coeffs)[0]
    identity = window_grid(warper)
    assert warp.face.sum() > 2000
    assert np.abs(warp.background_map - identity).max() < 0.5
    assert np.abs(warp.mouth_map - identity)[warp.face].max() < 0.5


def bilinear(field: np.ndarray, point: np.ndarray) -> np.ndarray:
    """`field` (h, w, C) at a continuous window point (pixel centres at j + 0.5)."""
    x, y = point - 0.5
    j, i = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - j, y - i
    return (
        (1 - fx) * (1 - fy) * field[i, j]
        + fx * (1 - fy) * field[i, j + 1]
        + (1 - fx) * fy * field[i + 1, j]
        + fx * fy * field[i + 1, j + 1]
    )


def test_a_known_pose_change_moves_known_points_where_they_were_filmed(builtin):
    warper = FaceWarper(builtin, CROP, CAMERA)
    filmed = neutral(builtin, angle=[0.0, 0.0, 0.0])
    posed = neutral(builtin, angle=[0.05, 0.12, 0.08], trans=[0.1, 0.05, 0.0])
    warp = warper.warps(posed, filmed, filmed)[0]
    # Nose, eyes, mouth corners (not the outline, where the warp eases into its fill).
    landmarks = builtin.landmark_idx[[30, 36, 39, 42, 45, 48, 54, 33, 57]]
    there, here = warper.screen(filmed)[0, landmarks, :2].numpy(), warper.screen(posed)[0, landmarks, :2].numpy()
    x0, y0 = warper.window[:2]
    assert np.abs(there - here).max() > 5  # the pose change moves them by several pixels
    for target, source in zip(here, there):
        # Where the posed face has a point, the warp looks where the filmed frame has it.
        np.testing.assert_allclose(bilinear(warp.background_map, target), source + (x0 - 0.5, y0 - 0.5), atol=0.5)


def textured_frames(warper: FaceWarper, coeffs, colours: torch.Tensor) -> np.ndarray:
    """Frames of the face with per-vertex `colours` at each of `coeffs`, over a checkered
    backdrop: what a camera filming that face would see."""
    model = warper.model
    vertices = pose_vertices(model.shape(coeffs.id, coeffs.exp), coeffs.angle, coeffs.trans)
    out = render_mesh(vertices, front_faces(model), colours, warper.camera)
    ys, xs = np.mgrid[0 : CROP.frame_height, 0 : CROP.frame_width]
    backdrop = np.where(((xs // 16 + ys // 16) % 2)[..., None] == 0, 40, 200).astype(np.uint8).repeat(3, -1)
    x0, y0, x1, y1 = warper.window
    frames = []
    for image, mask in zip(image_to_uint8(out.image), out.mask[:, 0].numpy() > 0.5):
        frame = backdrop.copy()
        frame[y0:y1, x0:x1][mask] = image[mask]
        frames.append(frame)
    return np.stack(frames)


def stack(*coeffs):
    return dataclasses.replace(
        coeffs[0],
        **{
            name: torch.cat([getattr(c, name) for c in coeffs])
            for name in ("id", "exp", "tex", "angle", "gamma", "trans")
        },
    )


def test_a_synthetic_face_is_reproduced_from_a_frame_filmed_in_another_pose(builtin):
    warper = FaceWarper(builtin, CROP, CAMERA)
    generator = torch.Generator().manual_seed(0)
    colours = torch.rand(builtin.subset("face").num_vertices, 3, generator=generator) * 0.8 + 0.1
    filmed = neutral(builtin, angle=[0.0, -0.05, 0.0])
    posed = neutral(builtin, angle=[0.04, 0.06, 0.05], trans=[0.05, 0.0, 0.1])
    frame, truth = textured_frames(warper, stack(filmed, posed), colours)
    warp = warper.warps(posed, filmed, filmed)[0]
    made = warper.compose(frame, frame, warp)
    x0, y0, x1, y1 = warper.window
    # Compared well inside the face (its edge pixels mix face and backdrop, and a turn hides a few).
    inside = cv2.erode(warp.face.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    error = np.abs(made[y0:y1, x0:x1].astype(np.float64) - truth[y0:y1, x0:x1])[inside]
    psnr = 10 * np.log10(255**2 / np.mean(error**2))
    unwarped = np.abs(frame[y0:y1, x0:x1].astype(np.float64) - truth[y0:y1, x0:x1])[inside]
    assert psnr > 30 and psnr > 10 * np.log10(255**2 / np.mean(unwarped**2)) + 10
    # Far from the face the frame is untouched.
    np.testing.assert_array_equal(made[:, :x0], frame[:, :x0])


def test_the_fill_follows_the_known_values_and_is_smooth_past_them():
    height, width = 96, 128
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    known = ((xs - 64) ** 2 + (ys - 48) ** 2 < 30**2).float()[None, None]
    constant = torch.full((1, 2, height, width), 3.0)
    full = lambda field: torch.nn.functional.interpolate(field, size=(height, width), mode="bilinear")  # noqa: E731
    assert fill_smooth(constant, known).shape == (1, 2, height // 4, width // 4)
    torch.testing.assert_close(full(fill_smooth(constant, known)), constant)
    ramp = (0.1 * xs.float())[None, None]
    filled = full(fill_smooth(ramp, known))[0, 0]
    # At the known region it agrees with the ramp to within its change over the coarse cells.
    edge = (known[0, 0] > 0) & (torch.nn.functional.max_pool2d(1 - known, 3, 1, 1)[0, 0] > 0)
    assert (filled[edge] - ramp[0, 0][edge]).abs().max() < 0.1 * 8
    # No steps anywhere (a seam would be one): neighbouring pixels differ by a few times the slope
    # at most, where the field turns from following the ramp to spanning the rest.
    assert filled.diff(dim=1).abs().max() < 0.5 and filled.diff(dim=0).abs().max() < 0.5
    assert fill_smooth(constant, torch.zeros_like(known)).abs().max() == 0


def test_the_mouth_opening_is_a_cap_over_the_inner_lip_loop(builtin):
    face = builtin.subset("face")
    loops = boundary_loops(face.faces)
    loop = mouth_loop(face, face.faces)
    assert sorted(len(rim) for rim in loops) == [16, 16, 20, 36]  # eyes, mouth, outline
    assert len(loop) == 20 and set(builtin.landmark_idx[60:68].tolist()) <= set(loop.tolist())


def test_an_open_mouth_shows_the_mouth_frame_or_a_painted_interior(builtin):
    warper = FaceWarper(builtin, CROP, CAMERA)
    closed, open_ = neutral(builtin), neutral(builtin, exp=opening_exp(builtin))
    warp = warper.warps(open_, closed, open_)[0]
    opening = warp.opening_alpha > 0.99
    assert opening.sum() > 20
    background = np.full((CROP.frame_height, CROP.frame_width, 3), 150, np.uint8)
    # A mouth frame whose open mouth is green inside (its skin like the background's).
    x0, y0, x1, y1 = warper.window
    inner = warper.screen(open_)[0, builtin.landmark_idx[60:68], :2].numpy() + (x0 - 0.5, y0 - 0.5)
    lender = background.copy()
    cv2.fillPoly(lender, [np.round(inner).astype(np.int32)], (150, 250, 150))
    made = warper.compose(background, lender, warp)
    window = made[y0:y1, x0:x1].astype(int)
    assert (window[opening][:, 1] - window[opening][:, 0]).mean() > 30
    assert warp.mouth_alpha[opening].min() == 1
    # Far from the mouth, the background frame.
    assert (window[~(warp.mouth_alpha > 0)] == 150).all()
    painted = warper.compose(background, None, warp)[y0:y1, x0:x1]
    colours = painted[opening].astype(int)
    assert colours.max(0).min() > 150 and colours.min(0).max() < 90  # teeth above, shadow below
    # Closed (the built-in model's mean mouth is a little parted): less to fill.
    assert warper.warps(closed, closed, closed)[0].opening_alpha.sum() < 0.5 * warp.opening_alpha.sum()


def test_a_face_model_without_a_mouth_opening_still_warps(builtin):
    face = builtin.subset("face")
    loop = mouth_loop(face, face.faces)
    # Close the mouth with a fan over its loop, as a BFM-like mesh has it.
    centre = loop[0]
    closing = torch.stack([torch.full((len(loop) - 2,), int(centre)), loop[1:-1], loop[2:]], 1)
    closed_model = type(face)(
        "closed-mouth",
        face.mean_shape,
        face.id_basis,
        face.exp_basis,
        torch.cat([face.faces, closing]),
        face.landmark_idx,
    )
    with pytest.raises(ValueError, match="no boundary loop rims the mouth"):
        mouth_loop(closed_model, closed_model.faces)
    warper = FaceWarper(closed_model, CROP, CAMERA)
    coeffs = neutral(closed_model, angle=[0.0, 0.1, 0.0])
    warp = warper.warps(coeffs, coeffs, coeffs)[0]
    assert not warp.opening_alpha.any() and warp.mouth_alpha.max() == 1
    assert np.abs(warp.background_map - window_grid(warper)).max() < 0.5


def test_the_ict_facekit_model_warps_exactly(ict_model):
    warper = FaceWarper(ict_model, CROP, CAMERA)
    coeffs = neutral(ict_model, angle=[0.0, 0.1, 0.0], trans=[0.0, 0.0, -0.5])
    opened = neutral(ict_model, exp=opening_exp(ict_model), angle=[0.0, 0.1, 0.0], trans=[0.0, 0.0, -0.5])
    warp = warper.warps(coeffs, coeffs, coeffs)[0]
    assert np.abs(warp.background_map - window_grid(warper)).max() < 0.5
    assert warper.warps(opened, coeffs, opened)[0].opening_alpha.sum() > 20


def test_ict_facekit_lips_do_not_cover_its_open_mouth(ict_model):
    """Seen from the front with the jaw open, the face mesh's lips stay outside its inner-lip
    landmarks' polygon: ICT-FaceKit's lips roll inward, and with the landmarks on their front (its
    converter version 2) lip covered 7.5% of this opening (1.7% now), and a quarter of the
    astronaut photo's, over her teeth."""
    warper = FaceWarper(ict_model, CROP, CAMERA)
    exp = torch.zeros(ict_model.layout.exp_dim)
    exp[list(ict_model.exp_names).index("jawOpen")] = 0.4
    opened = neutral(ict_model, exp=exp, trans=[0.0, 0.0, -0.5])
    screen = warper.screen(opened)
    height, width = warper.window_size
    triangles = rasterize(screen, warper.faces, RasterConfig(image_size=(height, width))).tri_ids[0]
    on_lips = (triangles >= 0) & (warper.codes[triangles.clamp(min=0)] % 4 == 1)
    contour = screen[:, warper.model.landmark_idx[60:68], :2]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5
    inside = torch.from_numpy(points_in_polygon(pixels.numpy(), contour[0].numpy())).reshape(height, width)
    assert inside.sum() > 50 and (inside & on_lips).sum() < 0.04 * inside.sum()


def test_closed_lips_painted_without_a_lender_meet_in_a_shadow(builtin):
    warper = FaceWarper(builtin, CROP, CAMERA)
    closed = neutral(builtin, exp=-0.5 * opening_exp(builtin))
    warp = warper.warps(closed, closed, closed)[0]
    contact = warp.lip_contact
    assert contact.sum() > 10
    # The seam runs across the mouth: wider than tall.
    rows, cols = np.nonzero(contact)
    assert np.ptp(cols) > 3 * np.ptp(rows)
    background = np.full((CROP.frame_height, CROP.frame_width, 3), 150, np.uint8)
    x0, y0, x1, y1 = warper.window
    painted = warper.compose(background, None, warp)[y0:y1, x0:x1].astype(int)
    assert painted[contact].min() < 150 * 0.4
    # Away from the seam (and any painted opening) the frame is untouched.
    near = contact | (warp.opening_alpha > 0)
    far = cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 3) > 6
    assert (painted[far] == 150).all()
    # A lent mouth brings its own seam: nothing is painted.
    lent = warper.compose(background, background, warp)[y0:y1, x0:x1]
    assert lent.min() >= 148


def test_a_frame_filmed_open_lends_closed_lips_of_lip_colour():
    # Lips (pink) around an opening with teeth (white) and dark corners, as a smiling photo.
    frame = np.full((120, 160, 3), (200, 170, 150), np.uint8)
    cv2.ellipse(frame, (80, 60), (40, 16), 0, 0, 360, (190, 90, 100), -1)
    inner = np.array([[50, 60], [62, 54], [80, 52], [98, 54], [110, 60], [98, 66], [80, 68], [62, 66]], np.float32)
    cv2.fillPoly(frame, [inner.astype(np.int32)], (235, 235, 230))
    cv2.circle(frame, (57, 60), 2, (20, 10, 10), -1)
    filled = fill_opening(frame, inner, grow=1.0)
    inside = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(inside, [inner.astype(np.int32)], 1)
    lips = np.array([190, 90, 100])
    assert np.abs(filled[inside > 0].astype(int) - lips).max() < 40
    assert np.abs(frame[inside > 0].astype(int) - lips).max() > 100
    # Away from the opening the frame is untouched, and the frame itself is not modified.
    near = cv2.dilate(inside, np.ones((9, 9), np.uint8)) > 0
    assert (filled[~near] == frame[~near]).all()
    assert (frame[inside > 0] == (235, 235, 230)).any()


def test_a_slightly_parted_painted_mouth_is_a_dark_gap_its_teeth_show_as_it_opens():
    thin = np.zeros((40, 60), bool)
    thin[20:24, 10:50] = True  # 4 px
    wide = np.zeros((40, 60), bool)
    wide[10:30, 10:50] = True  # 20 px
    for opening, teeth in ((thin, False), (wide, True)):
        image = np.full((40, 60, 3), 150, np.uint8)
        paint_mouth(image, opening, teeth_hidden=1.5)
        bright = image[opening].min(1) > 150
        assert bright.any() == teeth
        assert (image[~opening] == 150).all()
    # Without any hidden, a thin gap shows teeth: the gap reads as closed lips.
    image = np.full((40, 60, 3), 150, np.uint8)
    paint_mouth(image, thin)
    assert (image[thin].min(1) > 150).any()


def test_a_painted_opening_is_darker_than_dark_painted_lips_around_it():
    opening = np.zeros((40, 60), bool)
    opening[20:24, 10:50] = True
    light, dark = np.full((40, 60, 3), 200, np.uint8), np.full((40, 60, 3), (110, 40, 50), np.uint8)
    for image in (light, dark):
        paint_mouth(image, opening, shadow=opening_shadow(image[~opening]))
    np.testing.assert_array_equal(light[23, 30], MOUTH_SHADOW)  # already darker than 40% of the skin (below the teeth)
    shadow = dark[23, 30]
    assert (shadow <= np.array([110, 40, 50]) * SHADOW_SHARE + 0.5).all() and shadow[0] < MOUTH_SHADOW[0]
    assert (dark[~opening] == (110, 40, 50)).all()
