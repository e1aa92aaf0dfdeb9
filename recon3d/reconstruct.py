"""Per-clip 3D reconstruction: track, fit, measure, and write what `talkface reconstruct` writes.

The result (`Reconstruction`, saved as `coeffs.npz`) holds per-frame coefficients in the face
model's layout, the camera and the crop they refer to, and the actor's per-vertex albedo. Frames
are the clip's stable crop (S x S), seen by `PerspectiveCamera.deep3d(S)`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recon3d.albedo import albedo_to_tex, detailed_albedo
from recon3d.crop import CropTransform
from recon3d.errors import InputError
from recon3d.export import write_image, write_mesh
from recon3d.facemodel import COEFF_NAMES, CoeffLayout, Coeffs, FaceModel
from recon3d.fit import ClipFitter, ClipObservations, FitConfig, landmark_error, model_landmarks, psnr, render_fit
from recon3d.regressor import CoeffRegressor
from recon3d.track import FaceTrack, TrackConfig, track_video
from recon3d.video import AUDIO_RATE, VIDEO_FPS, VideoWriter, atomic_path, iter_frames, probe, read_audio
from render.camera import PerspectiveCamera
from render.composite import image_to_uint8

log = logging.getLogger("talkface")

RECONSTRUCTION_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Reconstruction:
    """A clip's fitted face, T frames at 25 fps."""

    coeffs: np.ndarray
    """(T, layout.total) float32 coefficients; columns in `layout` order (id, exp, tex, angle
    (pitch, yaw, roll radians), gamma (27 SH), trans (decimetres))."""
    layout: CoeffLayout
    face_model: str
    """Name of the face model the coefficients belong to."""
    num_vertices: int
    """Vertex count of that model (a cheap check that a loaded model is the same one)."""
    albedo: np.ndarray
    """(V, 3) float32 per-vertex albedo in [0, 1], lighting divided out."""
    crop: CropTransform
    landmark_error: np.ndarray
    """(T,) mean 68-landmark reprojection error / outer-eye-corner distance."""
    psnr: np.ndarray
    """(T,) PSNR (dB) of the re-render against the crop inside the rendered skin."""
    fps: float = VIDEO_FPS

    @property
    def num_frames(self) -> int:
        return len(self.coeffs)

    @property
    def camera(self) -> PerspectiveCamera:
        return PerspectiveCamera.deep3d(self.crop.size)

    def split(self, device: torch.device | str = "cpu") -> Coeffs:
        return self.layout.split(torch.from_numpy(self.coeffs).to(device))

    def angles_degrees(self) -> np.ndarray:
        """(T, 3) float64 head pose per frame: pitch, yaw, roll in degrees."""
        return np.degrees(self.coeffs[:, self.layout.slice("angle")].astype(np.float64))

    def save(self, path: str | os.PathLike) -> None:
        """Writes an .npz of plain arrays (no pickles), atomically."""
        with atomic_path(path) as tmp:
            np.savez_compressed(
                tmp,
                format_version=RECONSTRUCTION_FORMAT_VERSION,
                coeffs=self.coeffs.astype(np.float32),
                coeff_names=np.array([name for name, _ in self.layout.sizes]),
                coeff_sizes=np.array([size for _, size in self.layout.sizes]),
                face_model=np.array(self.face_model),
                num_vertices=self.num_vertices,
                albedo=self.albedo.astype(np.float32),
                crop_box=np.array([self.crop.x0, self.crop.y0, self.crop.side]),
                crop_size=self.crop.size,
                frame_size=np.array([self.crop.frame_width, self.crop.frame_height]),
                landmark_error=self.landmark_error.astype(np.float32),
                psnr=self.psnr.astype(np.float32),
                fps=self.fps,
                camera=np.array([self.camera.focal, self.camera.cx, self.camera.cy, self.camera.camera_distance]),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Reconstruction:
        try:
            data = np.load(path, allow_pickle=False)
            version = int(data["format_version"])
        except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f"{path}: not a readable reconstruction ({err}); rerun `talkface reconstruct`") from None
        if version != RECONSTRUCTION_FORMAT_VERSION:
            raise InputError(
                f"{path}: reconstruction format {version}, expected {RECONSTRUCTION_FORMAT_VERSION}; "
                "rerun `talkface reconstruct`"
            )
        try:
            return cls._from_arrays(data)
        except (KeyError, ValueError, TypeError, zipfile.BadZipFile) as err:
            raise InputError(f"{path}: malformed reconstruction ({err}); rerun `talkface reconstruct`") from None

    @classmethod
    def _from_arrays(cls, data) -> Reconstruction:
        sizes = dict(zip(data["coeff_names"].tolist(), data["coeff_sizes"].tolist()))
        x0, y0, side = (float(v) for v in data["crop_box"])
        width, height = (int(v) for v in data["frame_size"])
        return cls(
            coeffs=data["coeffs"],
            layout=CoeffLayout(sizes["id"], sizes["exp"], sizes["tex"]),
            face_model=str(data["face_model"]),
            num_vertices=int(data["num_vertices"]),
            albedo=data["albedo"],
            crop=CropTransform(x0, y0, side, int(data["crop_size"]), width, height),
            landmark_error=data["landmark_error"],
            psnr=data["psnr"],
            fps=float(data["fps"]),
        )


def load_crops(video: str | os.PathLike, track: FaceTrack, progress: bool = True) -> np.ndarray:
    """(T, S, S, 3) uint8 crops of the clip's frames (as many as the track has)."""
    crops = np.zeros((track.num_frames, track.crop.size, track.crop.size, 3), np.uint8)
    frames = tqdm(
        iter_frames(video), total=track.num_frames, desc="crop", unit="frame", disable=not progress, leave=False
    )
    for t, frame in enumerate(frames):
        if t >= track.num_frames:
            break
        crops[t] = track.crop.crop(frame)
    return crops


def observations(crops: np.ndarray, track: FaceTrack, device: torch.device) -> ClipObservations:
    landmarks = track.crop.frame_to_crop(track.ibug68)
    return ClipObservations(
        images=torch.from_numpy(crops).to(device).permute(0, 3, 1, 2),
        landmarks=torch.from_numpy(landmarks).float().to(device),
    )


@torch.no_grad()
def measure_fit(
    model: FaceModel,
    coeffs: Coeffs,
    albedo: torch.Tensor,
    obs: ClipObservations,
    batch_frames: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame landmark error (/ inter-ocular) and skin PSNR of the fit at the crop's size."""
    camera = PerspectiveCamera.deep3d(obs.image_size)
    skin = model.region_faces("skin")
    landmark_model = model.subset("landmarks")
    errors, psnrs = [], []
    for idx in torch.arange(coeffs.exp.shape[0]).split(batch_frames):
        batch = coeffs[idx]
        errors.append(landmark_error(model_landmarks(landmark_model, batch, camera), obs.landmarks[idx]))
        rendered = render_fit(model, batch, albedo, camera, skin)
        psnrs.append(psnr(rendered.image, obs.images[idx].float() / 255, rendered.mask))
    return torch.cat(errors).cpu().numpy(), torch.cat(psnrs).cpu().numpy()


@torch.no_grad()
def regressor_init(regressor: CoeffRegressor, obs: ClipObservations, batch_frames: int) -> Coeffs:
    """The regressor's per-frame coefficients of a clip, identity shared (the clip's mean)."""
    regressor.eval()
    parts = [regressor(obs.images[idx].float() / 255) for idx in torch.arange(len(obs.images)).split(batch_frames)]
    coeffs = Coeffs(*(torch.cat([getattr(p, name) for p in parts]) for name in COEFF_NAMES))
    return dataclasses.replace(coeffs, id=coeffs.id.mean(0, keepdim=True).expand_as(coeffs.id))


def reconstruct_clip(
    video: str | os.PathLike,
    model: FaceModel,
    fit_config: FitConfig | None = None,
    track: FaceTrack | None = None,
    track_config: TrackConfig | None = None,
    device: torch.device | str = "cpu",
    regressor: CoeffRegressor | None = None,
    progress: bool = True,
) -> tuple[Reconstruction, np.ndarray]:
    """Tracks (unless given a track), fits, refines the albedo and measures one clip; returns it
    and its (T, S, S, 3) crops (`fit_clip` then `refine_albedo`)."""
    track = track or track_video(video, track_config or TrackConfig(), progress=progress)
    recon, crops = fit_clip(video, model, fit_config, track, device=device, regressor=regressor, progress=progress)
    return refine_albedo(recon, model, crops, track, device, (fit_config or FitConfig()).batch_frames), crops


def fit_clip(
    video: str | os.PathLike,
    model: FaceModel,
    fit_config: FitConfig | None,
    track: FaceTrack,
    device: torch.device | str = "cpu",
    regressor: CoeffRegressor | None = None,
    progress: bool = True,
) -> tuple[Reconstruction, np.ndarray]:
    """The fit alone: per-frame coefficients with the fit's smooth albedo, measured; and the
    (T, S, S, 3) crops.

    With a `regressor`, the fit starts from its per-frame coefficients (identity averaged over the
    clip) instead of the mean face.
    """
    device = torch.device(device)
    crops = load_crops(video, track, progress)
    obs = observations(crops, track, device)
    face = model.subset("face").to(device)
    fit_config = fit_config or FitConfig()
    init = None if regressor is None else regressor_init(regressor, obs, fit_config.batch_frames)
    result = ClipFitter(face, fit_config).fit(obs, init=init, progress=progress)
    errors, psnrs = measure_fit(face, result.coeffs, result.albedo, obs, fit_config.batch_frames)
    full_albedo = model.albedo(None).detach().clone().cpu()
    full_albedo[model.region("face").cpu()] = result.albedo.detach().cpu()
    recon = Reconstruction(
        coeffs=model.layout.join(result.coeffs).detach().cpu().numpy(),
        layout=model.layout,
        face_model=model.name,
        num_vertices=model.num_vertices,
        albedo=full_albedo.numpy(),
        crop=track.crop,
        landmark_error=errors,
        psnr=psnrs,
        fps=track.fps,
    )
    return recon, crops


def refine_albedo(
    recon: Reconstruction,
    model: FaceModel,
    crops: np.ndarray,
    track: FaceTrack,
    device: torch.device | str = "cpu",
    batch_frames: int = 32,
) -> Reconstruction:
    """The fit with Yi et al.'s detailed albedo (from the clip's most frontal, neutral frames at
    the crop's resolution), texture coefficients where the model has an albedo basis, and the
    skin PSNR measured again."""
    device = torch.device(device)
    face = model.subset("face").to(device)
    region = model.region("face").cpu()
    coeffs = recon.split(device)
    obs = observations(crops, track, device)
    albedo = detailed_albedo(face, coeffs, torch.from_numpy(recon.albedo[region.numpy()]).to(device), obs)
    errors, psnrs = measure_fit(face, coeffs, albedo, obs, batch_frames)
    if model.layout.tex_dim:
        tex = albedo_to_tex(face, albedo)
        coeffs = dataclasses.replace(coeffs, tex=tex.expand_as(coeffs.tex))
    full_albedo = torch.from_numpy(recon.albedo).clone()
    full_albedo[region] = albedo.cpu()
    return dataclasses.replace(
        recon,
        coeffs=model.layout.join(coeffs).cpu().numpy(),
        albedo=full_albedo.numpy(),
        landmark_error=errors,
        psnr=psnrs,
    )


def overlay_frames(
    video: str | os.PathLike,
    recon: Reconstruction,
    model: FaceModel,
    device: torch.device | str = "cpu",
    opacity: float = 0.6,
) -> Iterator[np.ndarray]:
    """Frames for checking a fit, two panels side by side at full size: the render (albedo under
    the fitted light) pasted over the frame, and the bare geometry (uniform grey under the same
    light) blended over it, which shows misalignment the first panel can hide."""
    device = torch.device(device)
    face = model.subset("face").to(device)
    albedo = torch.from_numpy(recon.albedo).to(device)[model.region("face").to(device)]
    grey = torch.full_like(albedo, 0.6)
    faces = front_faces(face)
    coeffs = recon.split(device)
    frames = iter_frames(video)
    for idx in torch.arange(recon.num_frames, device=device).split(16):
        with torch.no_grad():
            textured = render_fit(face, coeffs[idx], albedo, recon.camera, faces)
            shaded = render_fit(face, coeffs[idx], grey, recon.camera, faces)
        masks = textured.mask[:, 0].cpu().numpy()
        for k, mask in enumerate(masks):
            frame = next(frames)
            panels = [
                recon.crop.paste(image_to_uint8(textured.image[k]), frame, mask),
                recon.crop.paste(image_to_uint8(shaded.image[k]), frame, mask * opacity),
            ]
            yield np.concatenate(panels, axis=1)


def front_faces(model: FaceModel, margin: float = 0.1) -> torch.Tensor:
    """(F', 3) triangles of the front of the face: in the mean shape, above the chin landmark and
    in front of the jaw's end points (minus `margin` dm), so the neck and ears stay out of the overlay."""
    lmk = model.landmarks(model.mean_shape)
    keep = (model.mean_shape[:, 1] >= lmk[8, 1] - margin) & (model.mean_shape[:, 2] >= lmk[[0, 16], 2].min() - margin)
    return model.faces[keep[model.faces].all(dim=1)]


def export_reconstruction(
    video: str | os.PathLike,
    recon: Reconstruction,
    model: FaceModel,
    out_dir: str | os.PathLike,
    overlay: bool = True,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[Path]:
    """Writes overlay.mp4 (or overlay.png for a photo; see `overlay_frames`), the fitted face at a
    neutral expression with its albedo as vertex colours (face.ply and face.glb, to open in a mesh
    viewer), and coeffs.npz (last: it marks completion)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if overlay:
        info = probe(video)
        frames = overlay_frames(video, recon, model, device)
        if info.is_image:
            paths.append(out_dir / "overlay.png")
            write_image(paths[0], next(frames))
        else:
            paths.append(out_dir / "overlay.mp4")
            audio = (
                read_audio(video, num_samples=round(recon.num_frames / recon.fps * AUDIO_RATE))
                if info.has_audio
                else None
            )
            with VideoWriter(paths[0], recon.fps, audio) as writer:
                for frame in tqdm(
                    frames, total=recon.num_frames, desc="overlay", unit="frame", disable=not progress, leave=False
                ):
                    writer.write(frame)
    coeffs = recon.split(model.faces.device)
    with torch.no_grad():
        neutral = model.shape(coeffs.id[:1], torch.zeros_like(coeffs.exp[:1]))[0].cpu().numpy()
    for name in ("face.ply", "face.glb"):
        paths.append(write_mesh(out_dir / name, neutral, model.faces.cpu().numpy(), recon.albedo))
    recon.save(out_dir / "coeffs.npz")
    return [*paths, out_dir / "coeffs.npz"]
