"""Image-based face synthesis: the actor's own pixels moved to a new expression and head pose.

A rendered face shows only what the face model explains (a few hundred to a few thousand vertex
colours); the real frame holds the rest (pores, stubble, lashes, specular highlights). So instead
of colours, the face model is rendered at the target coefficients with, as each vertex's
attribute, where that vertex lies in a real frame under that frame's fitted coefficients. The
interpolated attribute says, per output pixel, where to look in the real frame: a dense backward
warp, exact on the face surface, at the frame's own resolution (the window of frame pixels
around the actor's crop region, nothing resampled but the warp itself).

Past the face's outline the warp's displacement is filled smoothly (push-pull over an image
pyramid) and fades to none over `SynthesisConfig.falloff`: the jaw and chin drop with the mouth,
the neck below and the hair follow the head, the backdrop far away stays put, and there is no
paste boundary anywhere. The eyes, holes in a face mesh, take the same smooth fill, so they are
the background frame's eyes carried along.

The mouth opening is what the background frame may not show (its mouth more closed, or the
teeth elsewhere). A cap triangulated across the mesh's inner-lip loop (a shallow cone behind the
lips) is rendered with, as attribute, its position in a second frame of the actor, one whose
mouth has the target's shape (`render.mouth.match_mouths`, as Face2Face retrieves the mouth
interior from the target actor's own frames), and that frame's mouth interior is warped in,
colour-matched to the background frame on the lips around it. Where no frame opens wide enough
(a photo of a closed mouth), the opening is painted as a shadowed interior with the upper teeth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recon3d.crop import CropTransform
from recon3d.facemodel import Coeffs, FaceModel
from recon3d.facemodels.geometry import points_in_polygon
from recon3d.landmarks import INNER_LIPS_IBUG, OUTER_LIPS_IBUG
from recon3d.reconstruct import front_faces
from render.camera import PerspectiveCamera, camera_to_screen, model_to_camera, pose_vertices
from render.composite import seam_visibility
from render.face import opening_shadow, paint_mouth
from render.rasterize import RasterConfig, interpolate, rasterize

INTERPOLATIONS = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
SEAM_MARGIN = 8
"""Pixels around the face's box that the seam measure looks at (its band is 3 wide)."""


@dataclass(frozen=True)
class SynthesisConfig:
    margin: float = 0.3
    """The warped window: the actor's crop region grown by this fraction of its side on every side
    (clipped to the frame); outside it the background frame is copied unchanged."""
    falloff: float = 0.4
    """Distance past the face's outline, as a fraction of the crop side, over which the face's
    motion fades (cos^2) to none: far enough that the neck and hair follow the face without a
    visible stretch, near enough that the backdrop stays still."""
    cap_depth: float = 0.05
    """How far (decimetres, 5 mm) the mouth cap's centre lies behind the inner lips, so the cap
    never covers a lip and tilts like a mouth opening under yaw."""
    outline_band: float = 0.02
    """Depth inside the face's outline, as a fraction of the crop side, over which the exact warp
    eases into its smooth fill."""
    mouth_blend: float = 0.03
    """Width of the skin around the lips, as a fraction of the crop side, over which the mouth
    frame's lips fade into the background frame's face."""
    mouth_feather: float = 0.004
    """Width of the alpha ramp at the inner lips of a painted opening, as a fraction of the crop
    side (2 px at 512)."""
    interpolation: str = "cubic"
    """How the frames are resampled through the warp: "cubic", or "lanczos" (sharper, 3x the
    time; docs/design.md, image-based synthesis)."""
    contact_width: float = 0.003
    """Width, as a fraction of the crop side (1.5 px at 512; at least 1), of the shadow painted where the inner
    lips meet when no frame lends its mouth (see `FaceWarper.compose`)."""
    contact_shade: float = 0.3
    """How dark that shadow is: the lips' own colour times this at its centre."""
    teeth_hidden: float = 0.008
    """Height of the upper teeth, as a fraction of the crop side (1.5 px at 200), that the upper
    lip hides in a painted opening: a slightly parted mouth shows a dark gap, its teeth only as it
    opens further (teeth in a gap of a few pixels read as closed lips)."""
    opening_grow: float = 0.005
    """How far past the background frame's tracked inner lips, as a fraction of the crop side
    (1 px at 200; at least 1), its mouth opening is filled with lip before its lips are warped
    together (`fill_opening`)."""
    mouth_gain_range: tuple[float, float] = (0.6, 1.6)
    """Bounds of the per-channel gain that matches the mouth frame's light to the background
    frame's (measured on the skin around the lips)."""

    def __post_init__(self) -> None:
        if (
            min(self.margin, self.cap_depth, self.outline_band, self.mouth_blend, self.mouth_feather) < 0
            or self.falloff <= 0
        ):
            raise ValueError(f"need falloff > 0 and the other sizes >= 0: {self}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r}: one of {', '.join(INTERPOLATIONS)}")


def boundary_loops(faces: Tensor) -> list[list[int]]:
    """The closed boundary loops of a triangle mesh (edges used by one triangle), each as vertex
    ids in the order the triangles' winding gives them."""
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).tolist()
    undirected: dict[tuple[int, int], int] = {}
    for a, b in edges:
        key = (min(a, b), max(a, b))
        undirected[key] = undirected.get(key, 0) + 1
    following = {a: b for a, b in edges if undirected[(min(a, b), max(a, b))] == 1}
    loops, seen = [], set()
    for start in following:
        if start in seen:
            continue
        loop, vertex = [], start
        while vertex not in seen and vertex in following:
            seen.add(vertex)
            loop.append(vertex)
            vertex = following[vertex]
        if vertex == start and len(loop) >= 3:
            loops.append(loop)
    return loops


def mouth_loop(model: FaceModel, faces: Tensor) -> Tensor:
    """(L,) long: the boundary loop of `faces` that rims the mouth opening (the loop nearest the
    inner-lip landmarks in the mean shape). ValueError if the mesh has none (a closed mouth)."""
    mean = model.mean_shape.cpu()
    inner = model.landmarks(mean)[INNER_LIPS_IBUG]
    span = float((inner[:, 0].max() - inner[:, 0].min()).clamp(min=1e-6))
    best, distance = None, float("inf")
    for loop in boundary_loops(faces.cpu()):
        points = mean[loop]
        # The mouth's rim surrounds the inner lips: about their centre, about as wide.
        offset = float((points.mean(0) - inner.mean(0)).norm())
        width = float(points[:, 0].max() - points[:, 0].min())
        if offset < distance and 0.5 * span < width < 2.0 * span:
            best, distance = loop, offset
    if best is None or distance > span:
        raise ValueError(f"{model.name}: no boundary loop rims the mouth (the mesh has no mouth opening)")
    return torch.tensor(best, dtype=torch.int64)


def synthesis_window(crop: CropTransform, margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer frame pixels warped: the crop region grown by `margin` of its side
    each way, clipped to the frame."""
    grow = margin * crop.side
    x0, y0 = max(0, int(np.floor(crop.x0 - grow))), max(0, int(np.floor(crop.y0 - grow)))
    x1 = min(crop.frame_width, int(np.ceil(crop.x0 + crop.side + grow)))
    y1 = min(crop.frame_height, int(np.ceil(crop.y0 + crop.side + grow)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"the crop region {crop} lies outside its frame")
    return x0, y0, x1, y1


def window_camera(
    camera: PerspectiveCamera, crop: CropTransform, window: tuple[int, int, int, int]
) -> PerspectiveCamera:
    """The crop's camera (`camera`, rendering crop pixels) re-expressed in the frame pixels of
    `window`: one render pixel is one frame pixel."""
    scale = crop.side / crop.size  # frame pixels per crop pixel
    x0, y0, x1, y1 = window
    return PerspectiveCamera(
        focal=camera.focal * scale,
        cx=camera.cx * scale + crop.x0 - x0,
        cy=camera.cy * scale + crop.y0 - y0,
        image_size=(y1 - y0, x1 - x0),
        camera_distance=camera.camera_distance,
    )


def fill_smooth(values: Tensor, known: Tensor, coarse: int = 4) -> Tensor:
    """(B, C, H / coarse, W / coarse) (rounded up): a smooth field through the (B, C, H, W)
    `values` where (B, 1, H, W) `known` is 1, filling the rest (push-pull: weighted means up an
    image pyramid, then each level's gaps filled from the coarser one, bilinearly), `coarse` times
    smaller than the image: it follows the known values at that scale (not exactly at each pixel),
    and is brought to full size (bilinearly) where it is used, a frame at a time: the full-size
    levels would be most of the work. Frames with nothing known come back as zeros."""
    pyramid = []
    total = F.avg_pool2d(values * known, coarse, ceil_mode=True)
    weight = F.avg_pool2d(known, coarse, ceil_mode=True)
    while True:
        pyramid.append((total, weight))
        if min(total.shape[-2:]) <= 1:
            break
        total = F.avg_pool2d(total, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    total, weight = pyramid.pop()
    filled = total / weight.clamp(min=1e-8)  # the coarsest level: one mean per image
    for total, weight in reversed(pyramid):
        up = F.interpolate(filled, size=total.shape[-2:], mode="bilinear", align_corners=False)
        mean = total / weight.clamp(min=1e-8)
        # A cell half covered is as good as known: its mean is that of known neighbours.
        confidence = (2 * weight).clamp(max=1.0)
        filled = confidence * mean + (1 - confidence) * up
    return filled


def falloff_weight(face: np.ndarray, distance: float) -> np.ndarray:
    """(H, W) float32: 1 on the (H, W) bool `face`, fading (cos^2) to 0 at `distance` pixels from
    it. A long fade is measured on a grid of cells up to a 40th of it (the fade is smooth anyway)."""
    height, width = face.shape
    cell = int(np.clip(distance // 40, 1, 8))
    small = (
        face
        if cell == 1
        else cv2.resize(face.astype(np.uint8), (-(-width // cell), -(-height // cell)), interpolation=cv2.INTER_AREA)
        > 0
    )
    outside = cv2.distanceTransform((~small).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    weight = (np.cos(np.clip(outside * (cell / distance), 0, 1) * (np.pi / 2)) ** 2).astype(np.float32)
    if cell > 1:
        weight = np.maximum(cv2.resize(weight, (width, height), interpolation=cv2.INTER_LINEAR), face)
    return weight


@dataclass(frozen=True)
class FrameWarp:
    """One output frame's warp over the window (frame pixel coordinates as cv2.remap takes them:
    pixel centres at integers)."""

    background_map: np.ndarray
    """(h, w, 2) float32 where each window pixel samples the background frame."""
    mouth_map: np.ndarray
    """(h, w, 2) float32 where each window pixel samples the mouth frame (meaningful on the
    face and the opening)."""
    mouth_alpha: np.ndarray
    """(h, w) float32 opacity of the mouth frame: the lips and the opening, fading out over the
    skin around them."""
    opening_alpha: np.ndarray
    """(h, w) float32 opacity of the opening alone (feathered at the inner lips): what is painted
    when no frame lends its mouth."""
    skin: np.ndarray
    """(h, w) bool: the skin where the mouth frame fades out, on which the two frames' light is
    compared."""
    face: np.ndarray
    """(h, w) bool: the face surface (where the warp is exact; the rest is its smooth fill)."""
    lip_contact: np.ndarray
    """(h, w) bool: where the upper lip's surface meets the lower lip's (closed lips' seam)."""

    def seam(self, window: np.ndarray) -> float:
        """`render.composite.seam_visibility` along the face's outline in `window`, (h, w, 3)
        pixels of the warped window (of this frame, or of the real frame it stands for)."""
        box = _box(self.face, SEAM_MARGIN)
        if box is None:
            return float("nan")
        return seam_visibility(window[box], self.face[box].astype(np.float32))


def mouth_triangles(model: FaceModel, faces: Tensor, grow: float = 1.15) -> Tensor:
    """(F,) bool: the triangles of `faces` on the lips, i.e. inside the outer-lip landmarks'
    contour (grown by `grow` about its centre) of the mean shape seen from the front."""
    mean = model.mean_shape.cpu()
    lips = model.landmarks(mean)[OUTER_LIPS_IBUG]
    centre = lips.mean(0)
    contour = centre[:2] + grow * (lips[:, :2] - centre[:2])
    # Only the front of the head: a model that wraps around has vertices behind the lips too.
    front = mean[:, 2] > lips[:, 2].min() - 0.3
    inside = torch.from_numpy(points_in_polygon(mean[:, :2].numpy(), contour.numpy())) & front
    return inside[faces.cpu()].all(1)


def upper_lip_triangles(model: FaceModel, faces: Tensor) -> Tensor:
    """(F,) bool: the lip triangles (`mouth_triangles`) of the upper lip: above the line through
    the mouth's corners (inner-lip landmarks) in the mean shape."""
    mean = model.mean_shape.cpu()
    left, right = model.landmarks(mean)[[60, 64]]
    centroid = mean[faces.cpu()].mean(1)
    t = (centroid[:, 0] - left[0]) / (right[0] - left[0]).clamp(min=1e-6)
    return mouth_triangles(model, faces) & (centroid[:, 1] > left[1] + t * (right[1] - left[1]))


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels of the (h, w) bool region `a` next to (8-connected) region `b`: a
    one-pixel seam (both sides' pixels made a line the tracker read as a parted mouth)."""
    kernel = np.ones((3, 3), np.uint8)
    grow = lambda region: cv2.dilate(region.astype(np.uint8), kernel) > 0  # noqa: E731
    return a & grow(b)


class FaceWarper:
    """The actor's image-based face synthesis (see the module docstring) for frames of one
    size: warps from its face model, crop and camera, and the frames made from them."""

    def __init__(
        self,
        model: FaceModel,
        crop: CropTransform,
        camera: PerspectiveCamera,
        config: SynthesisConfig = SynthesisConfig(),
        device: torch.device | str = "cpu",
    ) -> None:
        face = model.subset("face")
        faces = front_faces(face)
        try:
            self.loop = mouth_loop(face, faces)
        except ValueError:
            # A closed mouth (BFM's): opening it stretches the lips' own triangles, which then
            # show the mouth frame's interior; there is no opening to paint.
            self.loop = torch.zeros(0, dtype=torch.int64)
        num_vertices, size = face.num_vertices, len(self.loop)
        # The cap: its own copies of the loop's vertices (they take the mouth frame's positions,
        # the lips' own the background frame's) and a centre, fanned.
        ring = torch.arange(size)
        cap = torch.stack(
            [num_vertices + ring, num_vertices + (ring + 1) % max(size, 1), torch.full_like(ring, num_vertices + size)],
            dim=1,
        )
        self.model = face.to(device)
        self.faces = torch.cat([faces.cpu(), cap]).to(device)
        # Per triangle: its label (0 skin, 1 lips, 2 the opening's cap), plus 4 on the upper lip
        # (one table, so one per-pixel gather).
        labels = torch.cat([mouth_triangles(face, faces).long(), torch.full((size,), 2)])
        upper_lip = torch.cat([upper_lip_triangles(face, faces), torch.zeros(size, dtype=torch.bool)])
        self.codes = (labels + 4 * upper_lip.long()).to(device)
        self.loop = self.loop.to(device)
        self.crop, self.config = crop, config
        self.window = synthesis_window(crop, config.margin)
        self.crop_camera = camera
        self.camera = window_camera(camera, crop, self.window)
        self.device = torch.device(device)

    @property
    def window_size(self) -> tuple[int, int]:
        """(h, w) of the warped window in frame pixels."""
        return self.camera.image_size

    def screen(self, coeffs: Coeffs, camera: PerspectiveCamera | None = None) -> Tensor:
        """(B, V + L + 1, 3) window-pixel (u, v, depth) of the face's vertices, then the cap's loop
        copies and centre (none without a mouth opening), under `coeffs` (fitted in the actor's crop,
        unless `camera` is the window camera of another)."""
        camera = camera or self.camera
        coeffs = coeffs.to(self.device)
        shape = self.model.shape(coeffs.id, coeffs.exp)
        if len(self.loop):
            rim = shape[:, self.loop]
            centre = rim.mean(1, keepdim=True) - shape.new_tensor([0.0, 0.0, self.config.cap_depth])
            shape = torch.cat([shape, rim, centre], 1)
        vertices = pose_vertices(shape, coeffs.angle, coeffs.trans)
        return camera_to_screen(model_to_camera(vertices, camera), camera)

    @torch.no_grad()
    def warps(
        self, target: Coeffs, background: Coeffs, mouth: Coeffs, target_crop: CropTransform | None = None
    ) -> list[FrameWarp]:
        """Per frame: the face at the `target` coefficients, its surface sampled from the frame
        fitted with `background`, its mouth from the frame fitted with `mouth`. `target_crop`:
        the crop the target coefficients were fitted in, when not the actor's (a held-out clip's
        own crop, of the same size)."""
        height, width = self.window_size
        camera = self.camera
        if target_crop is not None:
            if target_crop.size != self.crop.size:
                raise ValueError(f"target crop of {target_crop.size} px, the actor's is {self.crop.size} px")
            camera = window_camera(self.crop_camera, target_crop, self.window)
        screen = self.screen(target, camera)
        fragments = rasterize(screen, self.faces, RasterConfig(image_size=(height, width)))
        positions = torch.cat([self.screen(background)[..., :2], self.screen(mouth)[..., :2]], -1)
        num_vertices = self.model.num_vertices
        # The cap's vertices sample the mouth frame in the background channels too.
        positions[:, num_vertices:, :2] = positions[:, num_vertices:, 2:]
        sampled = interpolate(positions, fragments, self.faces)  # (B, h, w, 4)
        covered = fragments.tri_ids >= 0
        code = self.codes[fragments.tri_ids.clamp(min=0)]
        label = torch.where(covered, code % 4, -1)
        face = covered & (label < 2)
        ys, xs = torch.meshgrid(
            torch.arange(height, device=self.device), torch.arange(width, device=self.device), indexing="ij"
        )
        grid = torch.stack([xs, ys], -1).to(sampled.dtype) + 0.5  # pixel centres, window pixels
        exact = sampled[..., :2] - grid
        coarse = fill_smooth(exact.permute(0, 3, 1, 2), face[:, None].to(sampled.dtype)).permute(0, 2, 3, 1)
        x0, y0 = self.window[:2]
        # Window pixel centres (j + 0.5) -> cv2's frame coordinates (pixel centres at integers);
        # (h, w, 2) per frame, as cv2.remap takes its maps.
        offset = grid.new_tensor([x0 - 0.5, y0 - 0.5])
        as_maps = lambda field: field.contiguous().float().cpu().numpy()  # noqa: E731
        exact, coarse, grid = as_maps(exact), as_maps(coarse), as_maps(grid + offset)
        mouth_maps = as_maps(sampled[..., 2:] + offset)
        upper_lip = covered & (code >= 4)
        upper, lower = upper_lip.cpu().numpy(), (covered & (label == 1) & ~upper_lip).cpu().numpy()
        face, label = face.cpu().numpy(), label.cpu().numpy()
        side = self.crop.side
        out = []
        for k in range(len(face)):
            opening, lips = label[k] == 2, label[k] >= 1
            # Exact on the face, easing into the fill over a band inside its outline: at a turned
            # head's silhouette the exact warp changes fast, and a step there would show as a line.
            # (Not at the eyes and mouth, holes that the fill spans smoothly.)
            solid = _without_holes(face[k])
            inside = cv2.distanceTransform(solid.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_3)
            ease = np.clip(inside * (1.0 / max(self.config.outline_band * side, 1.0)), 0, 1) * face[k]
            displacement = cv2.resize(coarse[k], (width, height), interpolation=cv2.INTER_LINEAR)
            displacement += ease[..., None] * (exact[k] - displacement)
            displacement *= falloff_weight(solid, self.config.falloff * side)[..., None]
            displacement += grid
            mouth_alpha = _ramp_out(lips, self.config.mouth_blend * side) * (face[k] | opening)
            out.append(
                FrameWarp(
                    background_map=displacement,
                    mouth_map=mouth_maps[k],
                    mouth_alpha=mouth_alpha,
                    opening_alpha=_ramp_in(opening, self.config.mouth_feather * side),
                    skin=face[k] & (mouth_alpha > 0) & (mouth_alpha < 1),
                    face=face[k],
                    lip_contact=_touching(upper[k], lower[k]),
                )
            )
        return out

    def compose(self, background: np.ndarray, mouth: np.ndarray | None, warp: FrameWarp) -> np.ndarray:
        """The output frame: `background` (H, W, 3) uint8 warped to the target face, with the lips
        and mouth opening from `mouth` (None: the background's lips, the opening painted). The
        background frame is not modified."""
        x0, y0, x1, y1 = self.window
        interpolation = INTERPOLATIONS[self.config.interpolation]
        warped = cv2.remap(background, warp.background_map, None, interpolation, borderMode=cv2.BORDER_REPLICATE)
        lend = mouth is not None and warp.mouth_alpha.any()
        alpha = warp.mouth_alpha if lend else warp.opening_alpha
        if alpha.any():
            # Only the mouth's box changes.
            box = _box(alpha > 0, 0)
            under = warped[box]
            if lend:
                lent = cv2.remap(
                    mouth,
                    np.ascontiguousarray(warp.mouth_map[box]),
                    None,
                    interpolation,
                    borderMode=cv2.BORDER_REPLICATE,
                )
                lent = _match_light(lent, under, warp.skin[box], self.config.mouth_gain_range)
            else:
                lent, opening = under.copy(), alpha[box] > 0
                shadow = opening_shadow(lent[~opening])
                paint_mouth(lent, opening, self.config.teeth_hidden * self.crop.side, shadow)
                lent = cv2.GaussianBlur(lent, (0, 0), 1.0)  # softened, or it looks cut out
            a = alpha[box][..., None]
            warped[box] = np.clip(np.rint(a * lent + (1 - a) * under), 0, 255).astype(np.uint8)
        if not lend and warp.lip_contact.any():
            self._shade_lip_contact(warped, warp.lip_contact)
        out = background.copy()
        out[y0:y1, x0:x1] = warped
        return out

    def _shade_lip_contact(self, window: np.ndarray, contact: np.ndarray) -> None:
        """Darkens, in place, the (h, w) bool `contact` line of the (h, w, 3) `window`: the shadow
        where closed lips meet. The background frame's lips, warped together, have none of their
        own when it was filmed open (its lips' inner rims bordered teeth), and lips without it
        read as a band of open mouth (ICT-FaceKit's astronaut photo closed on none of its p/b/m)."""
        width = max(self.config.contact_width * self.crop.side, 1.0)
        box = _box(contact, int(np.ceil(2 * width)) + 1)
        line = cv2.GaussianBlur(contact[box].astype(np.float32), (0, 0), width / 2)
        line /= max(float(line.max()), 1e-6)
        shade = 1 - (1 - self.config.contact_shade) * line[..., None]
        window[box] = np.clip(np.rint(window[box] * shade), 0, 255).astype(np.uint8)


def fill_opening(frame: np.ndarray, inner_lips: np.ndarray, grow: float) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 `frame` whose mouth opening (the polygon of its (8, 2)
    tracked inner-lip landmarks, frame pixels, grown by `grow` px) is filled from the lips around
    it (Telea inpainting). Where the fit's inner lip rims lie inside the filmed opening, lips
    warped together from a frame filmed open otherwise carry its teeth and dark mouth corners: a
    band the tracker reads as open (ICT-FaceKit's astronaut photo closed on 18-79% of its p/b/m)."""
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(inner_lips).astype(np.int32)], 1)
    radius = max(int(round(grow)), 1)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    box = _box(mask > 0, 4 * radius + 3)
    out = frame.copy()
    if box is not None:
        out[box] = cv2.inpaint(np.ascontiguousarray(frame[box]), mask[box], 3, cv2.INPAINT_TELEA)
    return out


def _without_holes(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool `mask` with its holes (regions the outside does not reach) filled."""
    outside = np.pad(mask.astype(np.uint8), 1)
    cv2.floodFill(outside, None, (0, 0), 2)  # the padding connects everything outside
    return (outside != 2)[1:-1, 1:-1]


def _ramp_in(region: np.ndarray, width: float) -> np.ndarray:
    """(h, w) float32: 1 deeper than `width` px inside the bool `region`, ramping to 0 at its edge."""
    out = np.zeros(region.shape, np.float32)
    box = _box(region, 1)
    if box is not None:
        inside = cv2.distanceTransform(region[box].astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        out[box] = np.clip(inside / max(width, 1.0), 0, 1)
    return out


def _ramp_out(region: np.ndarray, width: float) -> np.ndarray:
    """(h, w) float32: 1 on the bool `region`, ramping (cos^2) to 0 `width` px outside it."""
    out = np.zeros(region.shape, np.float32)
    box = _box(region, int(np.ceil(width)) + 1)
    if box is not None:
        out[box] = falloff_weight(region[box], width)
    return out


def _box(region: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of the bool `region` grown by `margin` px (inside the image), or None."""
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if not len(rows):
        return None
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )


def _match_light(
    lent: np.ndarray, background: np.ndarray, skin: np.ndarray, gain_range: tuple[float, float]
) -> np.ndarray:
    """`lent` scaled per channel so that on the `skin` pixels it has the background's mean
    colour: the mouth frame may have been filmed a moment brighter or darker."""
    if skin.sum() < 8:
        return lent
    gain = (background[skin].astype(np.float32).mean(0) + 1) / (lent[skin].astype(np.float32).mean(0) + 1)
    return np.clip(lent.astype(np.float32) * np.clip(gain, *gain_range), 0, 255)
