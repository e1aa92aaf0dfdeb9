"""Eyelids and gaze drawn into a finished frame: a blink, a saccade, on any actor's own pixels.

Each eye is handled in its own frame of reference: u along the line from one corner to the other,
v across it (down the face). The tracked lids, through the corners and two points each, are
curves U(u) (upper) and L(u) (lower). Closing by `closure` c moves the upper lid's edge down to
E = U + c k (L - U) and the lower one up to L - c (1 - k) (L - U): shut (c = 1), they meet a
little above the lower lid (`LID_MEETING` k), as real lids do. What lies between the edge and
the brow is the upper lid's own skin, stretched down with its lashes at its edge (a backward warp,
column by column, pinned `LID_SKIN` eye widths above the lid); the eyeball between the edges stays
where it is and the lid covers it. Nothing moves past the corners or beyond the pinned band, so
the rest of the frame is unchanged. Gaze moves the eyeball's pixels between the lids sideways,
most at the eye's centre and none at its corners and lids.

One warp for every actor: a video actor's eyes are whatever frame lends the face (steered to
frames with open eyes: `render.keyframes.hold_backgrounds`' `frame_costs`), a photo's are its
one frame's, and both blink the same way. Retrieving a blink from another frame of the footage
would bring that frame's head pose and light with it, for two or three frames.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from recon3d.crop import CropTransform
from recon3d.facemodel import Coeffs, FaceModel
from recon3d.fit import model_landmarks
from recon3d.landmarks import BROWS_IBUG, EYES_IBUG
from render.camera import PerspectiveCamera

LID_MEETING = 0.8
"""Where shut lids meet, as a fraction of the way from the upper lid to the lower."""
LID_SKIN = 0.6
"""Height (eye widths) above the upper lid over which its skin stretches as it closes."""
BROW_CLEARANCE = 0.7
"""The upper lid's stretched skin reaches at most this fraction of the way up to the brow (the
brow stays put; stretched, it bends down into the lid)."""
LID_MARGIN = 0.03
"""How far (eye widths, at least a pixel) past the tracked lids, at the eye's middle, the eyeball is
taken to reach."""
CORNER_MARGIN = (0.1, 1.0, 2.0)
"""How far past each tracked corner the lids are taken to meet: a tenth of the eye width, at least
1 and at most 2 px (the tracker's corners sit a pixel or two inside the eye's; further out on a
large eye, the shut lid's stretched skin spread past the eye)."""
LID_LIGHT = 0.6
"""How much of the difference between the cheek under the eye and the lid's stretched skin is
made up on a shut lid."""
BELOW_LID = 0.35
"""Height (eye widths) below the lower lid over which its skin stretches as it rises."""


def _lid_curve(lid: np.ndarray, width: float, margin: float):
    """v(u) of a lid through both corners ((0, 0) and (width, 0)) and its two (2, 2) (u, v)
    points: the cubic s (1 - s) (a + b s), s = u / width (an almond, its peak where the points
    put it), pushed `margin` px further from the corner line at its middle (the tracked points
    sit on the lid's inner edge, and a shut lid must cover the eyeball's rim too)."""
    s = np.clip(lid[:, 0] / width, 1e-3, 1 - 1e-3)
    base = s * (1 - s)
    a, b = np.linalg.lstsq(np.stack([base, base * s], 1), lid[:, 1], rcond=None)[0]
    sign = 1.0 if lid[:, 1].mean() >= 0 else -1.0

    def curve(u: np.ndarray) -> np.ndarray:
        t = u / width
        return t * (1 - t) * (a + b * t + sign * 4 * margin)

    return curve


def eye_warp(eye: np.ndarray, closure: float, gaze: float, shape: tuple[int, int]):
    """The backward warp of one eye: ((rows, cols) slices of the box it changes, (h, w, 2)
    float32 maps into the frame for cv2.remap, (h, w) float32 weight of the lid's skin now over
    the eyeball, (h, w) bool the cheek under the eye), or None when nothing changes. `eye`: (6, 2)
    frame pixels in iBUG order (a corner, two upper-lid points, the other corner, two lower-lid
    points), optionally followed by the brow's points (the lid's skin stretches from below them);
    `closure` 0 (open) to 1 (shut); `gaze` in eye widths, + towards the second corner."""
    eye, brow = eye[:6], eye[6:]
    a, b = eye[0].astype(np.float64), eye[3].astype(np.float64)
    width = float(np.linalg.norm(b - a))
    if width < 2 or (closure <= 0 and gaze == 0):
        return None
    eu = (b - a) / width
    # The lids meet a little past the tracked corners (which sit inside the eye's: at small sizes,
    # left uncovered, the eyeball's dark corner read as an open eye).
    share, least, most = CORNER_MARGIN
    corner = float(np.clip(share * width, least, most))
    a, b, width = a - corner * eu, b + corner * eu, width + 2 * corner
    ev = np.array([-eu[1], eu[0]])
    local = (eye - a) @ np.stack([eu, ev], 1)  # (6, 2) u, v
    margin = max(LID_MARGIN * width, 1.0)
    upper, lower = _lid_curve(local[[1, 2]], width, margin), _lid_curve(local[[4, 5]], width, margin)
    top, bottom = LID_SKIN * width, BELOW_LID * width
    if len(brow):
        # The lowest brow point over the eye (between its corners), from the lid's middle.
        over = (brow - a) @ np.stack([eu, ev], 1)
        inside_corners = (over[:, 0] >= 0) & (over[:, 0] <= width)
        lowest = over[inside_corners if inside_corners.any() else slice(None), 1].max()
        clearance = float(upper(np.array([width / 2]))[0] - lowest)
        top = min(top, max(BROW_CLEARANCE * clearance, 0.1 * width))
    # The box: the eye's extent along u, from the pinned band above to the one below.
    v_min, v_max = min(local[:, 1].min(), 0) - top - 2, max(local[:, 1].max(), 0) + bottom + 2
    box_local = np.array([[-2, v_min], [width + 2, v_min], [width + 2, v_max], [-2, v_max]])
    box_frame = a + box_local @ np.stack([eu, ev])
    height, frame_width = shape
    x0, y0 = np.floor(box_frame.min(0)).astype(int)
    x1, y1 = np.ceil(box_frame.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, frame_width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rel = np.stack([xs - a[0], ys - a[1]], -1)
    u, v = rel @ eu, rel @ ev
    inside = (u > 0) & (u < width)
    uc = np.clip(u, 0, width)
    up, low = upper(uc), lower(uc)
    up, low = np.minimum(up, low), np.maximum(up, low)
    gap = low - up
    edge = up + closure * LID_MEETING * gap
    raised = low - closure * (1 - LID_MEETING) * gap
    pin_top, pin_bottom = up - top, low + bottom
    src_u, src_v = u.copy(), v.copy()
    lid = inside & (v >= pin_top) & (v < edge)
    src_v[lid] = (pin_top + (v - pin_top) * (up - pin_top) / np.maximum(edge - pin_top, 1e-6))[lid]
    below = inside & (v >= raised) & (v < pin_bottom)
    src_v[below] = (pin_bottom - (pin_bottom - v) * (pin_bottom - low) / np.maximum(pin_bottom - raised, 1e-6))[below]
    ball = inside & (v >= edge) & (v < raised)
    if gaze and ball.any():
        # Most at the centre, none at the corners or at the lid edges.
        across = np.clip(np.minimum(v - edge, raised - v) / np.maximum(0.25 * gap, 1e-6), 0, 1)
        src_u[ball] = (u - gaze * width * np.sin(np.pi * uc / width) * across)[ball]
    maps = a + src_u[..., None] * eu + src_v[..., None] * ev
    # The lid's skin over the eyeball, fading in below where the open lid was and out above its
    # lashes; and the cheek just under the eye, lit as the lid is.
    fade = np.maximum(0.1 * width, 1.0)
    cover = inside & (v < edge) & (v > up - fade)
    lit = np.clip((v - up + fade) / (2 * fade), 0, 1) * np.clip((edge - v) / np.maximum(0.3 * (edge - up), 1.0), 0, 1)
    cheek = inside & (np.abs(uc - width / 2) < width / 4) & (v > low + 0.1 * width) & (v < low + 0.3 * width)
    return (slice(y0, y1), slice(x0, x1)), maps.astype(np.float32), (lit * cover).astype(np.float32), cheek


def draw_eyes(frame: np.ndarray, eyes: np.ndarray, closure: float, gaze: float = 0.0) -> np.ndarray:
    """`frame` (H, W, 3) uint8 with its eyes ((2, 6 or 11, 2) frame pixels, `eye_warp`'s order) closed
    by `closure` and looking `gaze` eye widths aside; changed in place and returned."""
    if closure <= 0 and gaze == 0:
        return frame
    source = frame.copy()
    for eye in eyes:
        warp = eye_warp(eye, float(np.clip(closure, 0, 1)), gaze, frame.shape[:2])
        if warp is None:
            continue
        box, maps, lid, cheek = warp
        # Cubic, as the face warp: a gaze shift of a fraction of a pixel resampled bilinearly blurred
        # the iris (docs/eyes.md).
        warped = cv2.remap(source, maps, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        if closure > 0 and lid.any() and cheek.any():
            # The skin stretched over the eye comes from the socket under the brow, in shadow; a
            # shut lid bulges out into the light as the eyeball did (dark, it reads as an open eye).
            lift = np.clip(warped[cheek].mean(0) - warped[lid > 0.5].mean(0), 0, None) if (lid > 0.5).any() else 0
            warped += (LID_LIGHT * closure * lid)[..., None] * lift
        frame[box] = np.clip(np.rint(warped), 0, 255).astype(np.uint8)
    return frame


@torch.no_grad()
def moved_eyes(
    landmark_model: FaceModel,
    camera: PerspectiveCamera,
    crop: CropTransform,
    filmed: Coeffs,
    target: Coeffs,
    tracked: np.ndarray,
) -> np.ndarray:
    """(B, 2, 11, 2) frame pixels: each eye (`EYES_IBUG`) then its brow (`BROWS_IBUG`) of the
    (B, 68, 2) landmarks `tracked` in frames fitted with `filmed`, moved as the face model's
    landmarks move from `filmed` to `target` (where the warp that makes the output frame carries
    them). `landmark_model`: the face model's `subset("landmarks")`; `camera` and `crop`: the actor's."""
    points = np.r_[EYES_IBUG[0], BROWS_IBUG[0], EYES_IBUG[1], BROWS_IBUG[1]]
    before = crop.crop_to_frame(model_landmarks(landmark_model, filmed, camera).cpu().numpy()[:, points])
    after = crop.crop_to_frame(model_landmarks(landmark_model, target, camera).cpu().numpy()[:, points])
    return (tracked[:, points, :2] + after - before).reshape(-1, 2, 11, 2)
