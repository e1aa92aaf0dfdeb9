"""Analysis-by-synthesis fitting of a face model to one tracked clip.

Images are the clip's stable crop (`recon3d.crop`), S x S pixels, seen by
`PerspectiveCamera.deep3d(S)` (Deep3DFaceRecon's camera scaled to S). The fit runs in two
stages, each batched over all frames of the clip:

1. landmarks: shared identity, per-frame expression and pose fitted to the tracker's 68
   landmarks, with coefficient priors and temporal smoothness. Only the 68 landmark vertices are
   evaluated, so this stage is cheap and gives the photometric stage a good start.
2. photometric: the face skin is rendered at `render_size`; the skin-masked colour error joins the
   landmark loss and the per-frame SH lighting, the shared per-vertex albedo and the geometry are
   refined together.

Loss weights follow Deep3DFaceRecon (landmarks in 224-pixel units, weight 20 on the nose ridge and
inner lips; photometric L2 colour distance per pixel; coefficient priors; SH lighting pushed
towards white light), plus temporal smoothness on expression and pose, which a single-image
method has no use for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from recon3d.facemodel import Coeffs, FaceModel
from recon3d.landmarks import INNER_LIPS_IBUG
from render.camera import PerspectiveCamera, camera_to_screen, model_to_camera, pose_vertices, project
from render.renderer import RenderOutput, render_mesh
from render.shading import sh_shading, vertex_normals

log = logging.getLogger("talkface")

LANDMARK_WEIGHTS = torch.ones(68)
LANDMARK_WEIGHTS[28:31] = 20.0  # nose ridge: fixes the pose
LANDMARK_WEIGHTS[INNER_LIPS_IBUG] = 20.0  # inner lips: fixes the mouth opening


@dataclass
class FitConfig:
    """Settings of the per-clip fit."""

    landmark_steps: int = 1000
    """Adam steps of the landmark stage."""
    photometric_steps: int = 20
    """Adam steps of the photometric stage (each renders every frame once); 0 skips the stage."""
    render_size: int = 128
    """Side of the images the photometric stage renders and compares, pixels."""
    batch_frames: int = 32
    """Frames rendered together in the photometric stage (bounds memory, not the result)."""
    lr: float = 0.02
    """Adam learning rate of the landmark stage; the photometric stage uses lr/20 for the geometry
    (larger steps trade landmark accuracy for colour) and lr for lighting and albedo."""
    w_landmark: float = 1.6e-3
    """Landmark loss weight (squared error in 224-pixel units, Deep3DFaceRecon)."""
    w_photometric: float = 1.92
    """Photometric loss weight (mean L2 colour distance over skin pixels, Deep3DFaceRecon)."""
    w_id: float = 3e-5
    """Identity prior: weight of sum(id^2 / id_prior_std^2) (a tenth of Deep3DFaceRecon's 3e-4,
    which suits single images; a clip constrains identity better: landmark error on vox_00002
    3.0% -> 2.5%)."""
    w_exp: float = 3e-5
    """Expression prior: weight of the per-frame sum(exp^2 / exp_prior_std^2)."""
    w_gamma: float = 10.0
    """Lighting: weight of the spread of the SH coefficients across colour channels."""
    w_smooth_exp: float = 1e-3
    """Temporal smoothness: weight of the mean squared frame-to-frame expression change."""
    w_smooth_pose: float = 1e-1
    """Temporal smoothness: weight of the mean squared frame-to-frame angle (rad) and
    translation (dm) change."""


@dataclass(frozen=True)
class ClipObservations:
    """What the fit sees of a clip: crop images and 2D landmarks, T frames."""

    images: torch.Tensor
    """(T, 3, S, S) uint8 crop images."""
    landmarks: torch.Tensor
    """(T, 68, 2) iBUG-68 landmarks in crop pixels."""

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]


@dataclass(frozen=True)
class FitResult:
    """Per-frame coefficients of the clip and the shared per-vertex albedo of the fitted model."""

    coeffs: Coeffs
    """Coefficients, each (T, n)."""
    albedo: torch.Tensor
    """(V, 3) albedo in [0, 1] of the fitted model's vertices (lighting divided out)."""


def initial_pose(model: FaceModel, landmarks: torch.Tensor, camera: PerspectiveCamera) -> torch.Tensor:
    """(T, 68, 2) landmark pixels -> (T, 3) translation putting the mean face over them, unrotated.

    Depth from the ratio of the model's and the image's landmark spread, x/y from the centroids.
    """
    mean_lmk = model.mean_shape[model.landmark_idx]  # (68, 3)
    model_spread = (mean_lmk[:, :2] - mean_lmk[:, :2].mean(0)).norm(dim=-1).mean()
    image_spread = (landmarks - landmarks.mean(1, keepdim=True)).norm(dim=-1).mean(1)  # (T,)
    depth = camera.focal * model_spread / image_spread  # z_c of the face
    centre = landmarks.mean(1)  # (T, 2)
    x = (centre[:, 0] - camera.cx) * depth / camera.focal - mean_lmk[:, 0].mean()
    y = -(centre[:, 1] - camera.cy) * depth / camera.focal - mean_lmk[:, 1].mean()
    z = camera.camera_distance - depth - mean_lmk[:, 2].mean()  # the landmarks lie in front of the origin
    return torch.stack([x, y, z], dim=-1)


class _ClipParameters(torch.nn.Module):
    """The coefficients being fitted: identity and albedo shared, the rest per frame."""

    def __init__(self, model: FaceModel, init: Coeffs, albedo: torch.Tensor) -> None:
        super().__init__()
        self.id = torch.nn.Parameter(init.id[:1].mean(0, keepdim=True).clone())
        self.exp = torch.nn.Parameter(init.exp.clone())
        self.angle = torch.nn.Parameter(init.angle.clone())
        self.trans = torch.nn.Parameter(init.trans.clone())
        self.gamma = torch.nn.Parameter(init.gamma.clone())
        self.albedo = torch.nn.Parameter(albedo.clone())
        self.tex = init.tex.clone()
        self.exp_range = model.exp_range

    def coeffs(self) -> Coeffs:
        num_frames = self.exp.shape[0]
        return Coeffs(
            id=self.id.expand(num_frames, -1),
            exp=self.exp,
            tex=self.tex,
            angle=self.angle,
            gamma=self.gamma,
            trans=self.trans,
        )

    @torch.no_grad()
    def project_to_bounds(self) -> None:
        """Keeps blendshape weights in their range and albedo in [0, 1] (projected gradient)."""
        if self.exp_range is not None:
            self.exp.clamp_(*self.exp_range)
        self.albedo.clamp_(0.0, 1.0)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Runs torch on one CPU thread: the landmark stage's tiny ops get 40-90x slower with two
    threads when the other core is busy (measured), and gain nothing from a second thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _temporal(x: torch.Tensor) -> torch.Tensor:
    """Mean over frames of the squared frame-to-frame change of (T, n) x."""
    if x.shape[0] < 2:
        return x.new_zeros(())
    return (x[1:] - x[:-1]).pow(2).sum(-1).mean()


def landmark_loss(predicted: torch.Tensor, observed: torch.Tensor, image_size: int) -> torch.Tensor:
    """Weighted mean squared 68-landmark distance in 224-pixel units; (B, 68, 2) each."""
    weights = LANDMARK_WEIGHTS.to(predicted)
    scale = 224.0 / image_size
    return ((predicted - observed) * scale).pow(2).sum(-1).mul(weights).mean()


def prior_loss(model: FaceModel, coeffs: Coeffs, config: FitConfig) -> torch.Tensor:
    """Coefficient priors and white-light preference, averaged over frames."""
    loss = config.w_id * (coeffs.id / model.id_prior_std).pow(2).sum(-1).mean()
    loss = loss + config.w_exp * (coeffs.exp / model.exp_prior_std).pow(2).sum(-1).mean()
    if coeffs.tex.shape[-1]:
        loss = loss + config.w_id * (coeffs.tex / model.tex_prior_std).pow(2).sum(-1).mean()
    gamma = coeffs.gamma.reshape(-1, 3, 9)
    return loss + config.w_gamma * (gamma - gamma.mean(1, keepdim=True)).pow(2).sum((1, 2)).mean()


def smoothness_loss(coeffs: Coeffs, config: FitConfig) -> torch.Tensor:
    pose = torch.cat([coeffs.angle, coeffs.trans], dim=-1)
    return config.w_smooth_exp * _temporal(coeffs.exp) + config.w_smooth_pose * _temporal(pose)


def model_landmarks(landmark_model: FaceModel, coeffs: Coeffs, camera: PerspectiveCamera) -> torch.Tensor:
    """(B, 68, 2) pixel positions of the landmarks; `landmark_model` = `model.subset("landmarks")`
    (68 vertices instead of thousands: the landmark stage never evaluates the rest)."""
    vertices = landmark_model.landmarks(landmark_model.shape(coeffs.id, coeffs.exp))
    return project(vertices, coeffs.angle, coeffs.trans, camera)


def sample_vertex_colors(images: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images sampled bilinearly at (B, V, 2) pixel positions -> (B, V, 3)."""
    height, width = images.shape[-2:]
    grid = torch.stack([2 * pixels[..., 0] / width - 1, 2 * pixels[..., 1] / height - 1], dim=-1)
    sampled = F.grid_sample(images, grid[:, :, None], mode="bilinear", align_corners=False)  # (B, 3, V, 1)
    return sampled[..., 0].transpose(1, 2)


def facing_camera(vertices: torch.Tensor, normals: torch.Tensor, camera: PerspectiveCamera) -> torch.Tensor:
    """(B, V) cosine between posed normals and the direction to the camera (> 0: facing it)."""
    to_camera = torch.tensor([0.0, 0.0, camera.camera_distance]).to(vertices) - vertices
    return (F.normalize(to_camera, dim=-1) * normals).sum(-1)


@dataclass(frozen=True)
class VertexObservation:
    """What a batch of B frames shows at each of the model's V vertices."""

    albedo: torch.Tensor
    """(B, V, 3) frame colour at the vertex divided by the fitted irradiance there."""
    facing: torch.Tensor
    """(B, V) cosine between the vertex normal and the direction to the camera."""
    screen: torch.Tensor
    """(B, V, 3) [u, v, z_c] of the vertex in the frames' pixels."""


def observe_vertices(
    model: FaceModel, coeffs: Coeffs, images: torch.Tensor, camera: PerspectiveCamera
) -> VertexObservation:
    """Samples (B, 3, H, W) float images at the fitted face's vertices and divides out the light;
    `camera` must match the images' size."""
    vertices = pose_vertices(model.shape(coeffs.id, coeffs.exp), coeffs.angle, coeffs.trans)
    normals = vertex_normals(vertices, model.faces)
    screen = camera_to_screen(model_to_camera(vertices, camera), camera)
    colors = sample_vertex_colors(images, screen[..., :2])
    irradiance = sh_shading(normals, coeffs.gamma).clamp(min=1e-3)
    return VertexObservation(colors / irradiance, facing_camera(vertices, normals, camera), screen)


class ClipFitter:
    """Fits one face model to one clip; `fit` runs both stages."""

    def __init__(self, model: FaceModel, config: FitConfig | None = None) -> None:
        self.model = model
        self.config = config or FitConfig()
        self.skin_faces = model.region_faces("skin")
        self.landmark_model = model.subset("landmarks")

    def initial_coeffs(self, observations: ClipObservations, camera: PerspectiveCamera) -> Coeffs:
        num_frames = observations.landmarks.shape[0]
        coeffs = self.model.layout.zeros(num_frames, device=observations.landmarks.device)
        return dataclasses.replace(coeffs, trans=initial_pose(self.model, observations.landmarks, camera))

    def fit(
        self,
        observations: ClipObservations,
        init: Coeffs | None = None,
        progress: bool = True,
    ) -> FitResult:
        camera = PerspectiveCamera.deep3d(observations.image_size)
        init = init if init is not None else self.initial_coeffs(observations, camera)
        albedo = self.model.albedo(init.tex[:1])[0] if init.tex.shape[-1] else self.model.albedo(None)
        params = _ClipParameters(self.model, init, albedo.detach()).to(observations.images.device)
        with single_thread():
            self._fit_landmarks(params, observations, camera, progress)
        if self.config.photometric_steps > 0:
            size = self.config.render_size
            images = torch.cat(
                [
                    F.interpolate(observations.images[idx].float() / 255, size=(size, size), mode="area")
                    for idx in torch.arange(len(observations.images)).split(self.config.batch_frames)
                ]
            )
            self._init_appearance(params, images, camera.resized(size))
            self._fit_photometric(params, images, observations.landmarks, camera, progress)
        coeffs = params.coeffs().detach()
        return FitResult(coeffs=coeffs, albedo=params.albedo.detach())

    def _fit_landmarks(
        self, params: _ClipParameters, observations: ClipObservations, camera: PerspectiveCamera, progress: bool
    ) -> None:
        cfg = self.config
        optimizer = torch.optim.Adam([params.id, params.exp, params.angle, params.trans], lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.landmark_steps, eta_min=cfg.lr / 20)
        bar = tqdm(range(cfg.landmark_steps), desc="fit landmarks", unit="step", disable=not progress, leave=False)
        for _ in bar:
            optimizer.zero_grad(set_to_none=True)
            coeffs = params.coeffs()
            predicted = model_landmarks(self.landmark_model, coeffs, camera)
            loss = cfg.w_landmark * landmark_loss(predicted, observations.landmarks, camera.image_size[0])
            loss = loss + prior_loss(self.model, coeffs, cfg) + smoothness_loss(coeffs, cfg)
            loss.backward()
            optimizer.step()
            schedule.step()
            params.project_to_bounds()
            bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)

    @torch.no_grad()
    def _init_appearance(self, params: _ClipParameters, images: torch.Tensor, camera: PerspectiveCamera) -> None:
        """Albedo from the frames' colours at the vertices under the initial white light.

        Each vertex takes the mean colour over the frames where it faces the camera most; one that
        never faces it (inside the lips, a nostril's inside) takes the mean of the others, not
        black: another expression may show it. The photometric stage then refines albedo and
        lighting jointly.
        """
        coeffs = params.coeffs()
        total = torch.zeros_like(params.albedo)
        weight = torch.zeros(params.albedo.shape[0], 1).to(total)
        for idx in torch.arange(coeffs.exp.shape[0]).split(self.config.batch_frames):
            seen = observe_vertices(self.model, coeffs[idx], images[idx], camera)
            facing = seen.facing.clamp(min=0).pow(4)[..., None]  # (B, V, 1)
            total += (facing * seen.albedo).sum(0)
            weight += facing.sum(0)
        observed = weight > 1e-3
        average = total.sum(0) / weight.sum(0).clamp(min=1e-6)
        params.albedo.copy_(torch.where(observed, total / weight.clamp(min=1e-6), average).clamp(0, 1))

    def _fit_photometric(
        self,
        params: _ClipParameters,
        images: torch.Tensor,
        landmarks: torch.Tensor,
        camera: PerspectiveCamera,
        progress: bool,
    ) -> None:
        """`images` (T, 3, R, R) float at the render size; `camera` the landmarks' (crop size)."""
        cfg = self.config
        render_camera = camera.resized(images.shape[-1])
        optimizer = torch.optim.Adam(
            [
                {"params": [params.id, params.exp, params.angle, params.trans], "lr": cfg.lr / 20},
                {"params": [params.gamma, params.albedo], "lr": cfg.lr},
            ]
        )
        num_frames = params.exp.shape[0]
        bar = tqdm(range(cfg.photometric_steps), desc="fit photometric", unit="step", disable=not progress, leave=False)
        for step in bar:
            # Geometry waits until albedo and lighting are roughly right, or it chases their errors
            # (measured: landmark error rises from the landmark stage's otherwise).
            optimizer.param_groups[0]["lr"] = 0.0 if step < cfg.photometric_steps // 3 else cfg.lr / 20
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for idx in torch.arange(num_frames).split(cfg.batch_frames):
                share = len(idx) / num_frames
                batch = params.coeffs()[idx]
                loss = share * self.frame_losses(
                    batch, params.albedo, images[idx], landmarks[idx], render_camera, camera
                )
                loss.backward()
                total += loss.item()
            coeffs = params.coeffs()
            loss = prior_loss(self.model, coeffs, cfg) + smoothness_loss(coeffs, cfg)
            loss.backward()
            optimizer.step()
            params.project_to_bounds()
            bar.set_postfix(loss=f"{total + loss.item():.4g}", refresh=False)

    def frame_losses(
        self,
        coeffs: Coeffs,
        albedo: torch.Tensor,
        images: torch.Tensor,
        landmarks: torch.Tensor,
        render_camera: PerspectiveCamera,
        landmark_camera: PerspectiveCamera,
    ) -> torch.Tensor:
        """Photometric + landmark loss of a batch of frames (mean over the batch)."""
        cfg = self.config
        rendered = render_fit(self.model, coeffs, albedo, render_camera, self.skin_faces)
        photo = photometric_loss(rendered.image, images, rendered.mask)
        predicted = model_landmarks(self.landmark_model, coeffs, landmark_camera)
        lmk = landmark_loss(predicted, landmarks, landmark_camera.image_size[0])
        return cfg.w_photometric * photo + cfg.w_landmark * lmk


def render_fit(
    model: FaceModel, coeffs: Coeffs, albedo: torch.Tensor, camera: PerspectiveCamera, faces: torch.Tensor
) -> RenderOutput:
    """Renders the face (albedo under each frame's lighting) at the camera's size; `faces` picks
    the triangles (e.g. the skin's)."""
    vertices = pose_vertices(model.shape(coeffs.id, coeffs.exp), coeffs.angle, coeffs.trans)
    colors = albedo * sh_shading(vertex_normals(vertices, model.faces), coeffs.gamma)
    return render_mesh(vertices, faces, colors, camera)


def photometric_loss(rendered: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked pixels of the L2 colour distance; (B, 3, H, W) images, (B, 1, H, W) mask."""
    total, area = photometric_sums(rendered, images, mask)
    return total / area.clamp(min=1.0)


def photometric_sums(rendered: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(2,): the masked sum of the L2 colour distance and the mask's area, whose ratio is
    `photometric_loss` (sums add up over the shares of a batch split across processes)."""
    distance = ((rendered - images).pow(2).sum(1, keepdim=True) + 1e-8).sqrt()
    return torch.stack([(distance * mask).sum(), mask.sum()])


def psnr(rendered: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR in dB over the masked pixels of [0, 1] images; (B, 3, H, W), mask (B, 1, H, W)."""
    mse = ((rendered - images).pow(2) * mask).sum((1, 2, 3)) / (3 * mask.sum((1, 2, 3))).clamp(min=1.0)
    return -10.0 * torch.log10(mse.clamp(min=1e-10))


def landmark_error(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """(B,) mean 68-landmark distance divided by the outer-eye-corner distance of `observed`."""
    interocular = (observed[:, 36] - observed[:, 45]).norm(dim=-1)
    return (predicted - observed).norm(dim=-1).mean(-1) / interocular
