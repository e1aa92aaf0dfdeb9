"""The output frames of a frame plan, a batch at a time: the actor's own pixels warped (image
synthesis: `warp_batch` then `compose_warped`, the next batch's warps made while this one is
composed) or the face model rendered and blended into the background frame (`compose_batch`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from personalize.bundle import BackgroundFrames
from recon3d.crop import CropTransform
from recon3d.facemodel import Coeffs
from recon3d.fit import model_landmarks
from recon3d.landmarks import RIGID_IBUG
from refine.actor import ActorRefiner
from render.composite import CompositeConfig, blend, seam_visibility
from render.eyes import draw_eyes
from render.face import FaceRenderer
from render.synthesis import FaceWarper, FrameWarp
from render.warp import similarity_transform, warp_near


@dataclass(frozen=True)
class FramePlan:
    """Per output frame: the background frame and the face's coefficients."""

    background: np.ndarray
    """(T,) index into the actor's frames."""
    exp: np.ndarray
    """(T, exp_dim) expression."""
    angle: np.ndarray
    """(T, 3) pitch, yaw, roll in radians."""
    trans: np.ndarray
    """(T, 3) translation."""
    mouth: np.ndarray | None = None
    """(T,) the actor's frame that lends each frame's mouth interior, -1 where none opens wide
    enough (`render.mouth.match_mouths`); None when the plan is for the face model's render."""
    closure: np.ndarray | None = None
    """(T,) lid closure drawn (0 open, 1 shut; `audio2pose.blinks`); None: the eyes are left as
    the background frames have them."""
    gaze: np.ndarray | None = None
    """(T,) gaze drawn, in eye widths aside (with `closure`)."""

    @property
    def num_frames(self) -> int:
        return len(self.background)


def warp_batch(
    warper: FaceWarper,
    plan: FramePlan,
    coeffs: Coeffs,
    tracked: np.ndarray,
    eyes: Callable[[Coeffs, Coeffs, np.ndarray], np.ndarray] | None,
    batch: np.ndarray,
) -> tuple[list[FrameWarp], np.ndarray | None]:
    """The batch's warps of the actor's own pixels (`render.synthesis`) and, with the plan's blinks
    and gaze, the (N, 68, 2) `tracked` landmarks' eyes moved to each output frame by `eyes`
    (`render.eyes.moved_eyes` bound to the actor), where the lids are to be drawn."""
    background, mouth = plan.background[batch], plan.mouth[batch]
    filmed = coeffs[torch.from_numpy(background)]
    target = dataclasses.replace(
        filmed,
        exp=torch.from_numpy(plan.exp[batch]),
        angle=torch.from_numpy(plan.angle[batch]),
        trans=torch.from_numpy(plan.trans[batch]),
    )
    warps = warper.warps(target, filmed, coeffs[torch.from_numpy(np.maximum(mouth, 0))])
    return warps, None if eyes is None else eyes(filmed, target, tracked[background])


def compose_warped(
    frames: BackgroundFrames,
    closed_frames: Callable[[int], np.ndarray],
    closing: np.ndarray,
    warper: FaceWarper,
    plan: FramePlan,
    batch: np.ndarray,
    warps: list[FrameWarp],
    drawn: np.ndarray | None,
) -> list[tuple[np.ndarray, float]]:
    """The batch's output frames from its `warp_batch` warps and eyes, each with the seam
    visibility along the face's outline in the warped window; where no frame lends the mouth and
    the (T,) `closing` says the lips close further than the background frame's, the background
    frame is `closed_frames`' (its opening filled with lip)."""
    background, mouth = plan.background[batch], plan.mouth[batch]
    x0, y0, x1, y1 = warper.window
    made = []
    for k, warp in enumerate(warps):
        index = int(background[k])
        if mouth[k] >= 0:
            frame = warper.compose(frames[index], frames[int(mouth[k])], warp)
        else:
            frame = warper.compose(closed_frames(index) if closing[batch[k]] else frames[index], None, warp)
        if drawn is not None:
            draw_eyes(frame, drawn[k], plan.closure[batch[k]], plan.gaze[batch[k]])
        made.append((frame, warp.seam(frame[y0:y1, x0:x1])))
    return made


def compose_batch(
    frames: BackgroundFrames,
    crop: CropTransform,
    renderer: FaceRenderer,
    refiner: ActorRefiner | None,
    plan: FramePlan,
    batch: np.ndarray,
    coeffs: Coeffs,
    mode: str,
    composite: CompositeConfig,
) -> list[tuple[np.ndarray, float]]:
    """The batch's full-size output frames (the face model rendered, blended into `crop` of the
    background frames, refined by `refiner` when given), each with the seam visibility of its
    blended crop."""
    # The refiner sees each frame with its neighbours: the batch's edge frames' are made too.
    half = refiner.window // 2 if refiner else 0
    made = np.clip(np.arange(batch[0] - half, batch[-1] + half + 1), 0, plan.num_frames - 1)
    background = plan.background[made]
    face = dataclasses.replace(
        coeffs[torch.from_numpy(background)],
        exp=torch.from_numpy(plan.exp[made]),
        angle=torch.from_numpy(plan.angle[made]),
        trans=torch.from_numpy(plan.trans[made]),
    ).to(renderer.device)
    images, coverage, landmarks = renderer.render(face)
    if mode == "predicted":
        # Where the background frame's head is, to move it to the rendered one.
        filmed = coeffs[torch.from_numpy(background)].to(renderer.device)
        with torch.no_grad():
            filmed_landmarks = model_landmarks(renderer.landmark_model, filmed, renderer.camera).cpu().numpy()
    full, crops, alphas = [], [], []
    for k, index in enumerate(background):
        frame = frames[int(index)]
        if mode == "predicted":
            frame = follow_head(frame, crop, filmed_landmarks[k], landmarks[k])
        blended, alpha = blend(images[k], crop.crop(frame), coverage[k], composite)
        full.append(frame)
        crops.append(blended)
        alphas.append(alpha)
    middle = slice(half, len(made) - half)
    full, crops, alphas = full[middle], np.stack(crops), alphas[middle]
    if refiner:
        refined, face_alphas = refiner.refine(crops, coverage[middle])
        alphas = [np.maximum(alpha, face) for alpha, face in zip(alphas, face_alphas)]
        crops = refined
    else:
        crops = crops[middle]
    return [
        (crop.paste(image, frame, alpha), seam_visibility(image, alpha))
        for image, frame, alpha in zip(crops, full, alphas)
    ]


def follow_head(frame: np.ndarray, crop: CropTransform, filmed: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    """The frame with its head moved from the `filmed` to the `rendered` landmarks (crop pixels)."""
    source, target = crop.crop_to_frame(filmed[RIGID_IBUG]), crop.crop_to_frame(rendered[RIGID_IBUG])
    matrix = similarity_transform(source, target)
    center = tuple(source.mean(0))
    return warp_near(frame, matrix, center, radius=crop.side * 0.6)
