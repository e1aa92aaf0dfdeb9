"""Dense face landmarks per frame from mediapipe's face mesh (bundled models, works offline).

Coordinates are image pixels, continuous: the top-left corner of the image is (0, 0) and pixel
(i, j) covers [i, i+1) x [j, j+1). x points right, y down; z is mediapipe's relative depth
(smaller is nearer the camera) in the same pixel units as x.

The 68-point iBUG layout (as dlib and most 3DMM fitting code use it) is a fixed subset of the
478 mesh vertices, `IBUG68_FROM_MESH`, 0-based in iBUG order: jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47, outer lips 48-59, inner lips 60-67. Most are the mesh vertices with the same
meaning (eye corners, lip corners, nose tip). The jaw has no such vertices (dlib's jaw line is a
2D contour), so the 17 jaw points and the outer brow ends are the vertices nearest to dlib's
68-point predictor, fitted on half of the shared clips: on the other half this cut the mean
distance to dlib from 5.3% to 4.5% of the inter-ocular distance (jaw 9.9% -> 7.5%).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

NUM_MESH_LANDMARKS = 478
"""468 face mesh vertices + 10 iris points (mediapipe `refine_landmarks=True`)."""

IBUG68_FROM_MESH = np.array(
    [
        # jaw, from the subject's right ear (image left) to the left ear
        34,
        227,
        137,
        213,
        138,
        136,
        150,
        176,
        152,
        377,
        378,
        365,
        397,
        435,
        361,
        454,
        356,
        # right brow, left brow
        70,
        63,
        105,
        66,
        55,
        285,
        296,
        334,
        293,
        300,
        # nose bridge (top to tip), nostrils
        168,
        197,
        5,
        4,
        75,
        97,
        2,
        326,
        305,
        # right eye, left eye (outer corner first, clockwise in the image)
        33,
        160,
        158,
        133,
        153,
        144,
        362,
        385,
        387,
        263,
        373,
        380,
        # outer lips, from the right corner clockwise in the image
        61,
        39,
        37,
        0,
        267,
        269,
        291,
        405,
        314,
        17,
        84,
        181,
        # inner lips
        78,
        82,
        13,
        312,
        308,
        317,
        14,
        87,
    ],
    dtype=np.int64,
)
NOSE_TIP_MESH = 4
"""Mesh vertex of the nose tip (iBUG point 30)."""
EYE_OUTER_CORNERS_IBUG = (36, 45)
"""iBUG indices of the two outer eye corners, whose distance normalises landmark errors."""
INNER_LIP_PAIRS_IBUG = ((61, 67), (62, 66), (63, 65))
"""iBUG indices of the upper and lower inner-lip points facing each other (mouth aperture)."""
EYES_IBUG = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))
"""iBUG indices of each eye: a corner, two upper-lid points, the other corner, two lower-lid points."""
BROWS_IBUG = ((17, 18, 19, 20, 21), (22, 23, 24, 25, 26))
"""iBUG indices of the brow above each eye of `EYES_IBUG`, from its outer end."""
MOUTH_IBUG = slice(48, 68)
"""iBUG indices of the lips: the outer contour (`OUTER_LIPS_IBUG`), then the inner one."""
OUTER_LIPS_IBUG = slice(48, 60)
INNER_LIPS_IBUG = slice(60, 68)
"""iBUG indices of the inner-lip contour: its polygon is the mouth opening."""
MOUTH_CORNERS_IBUG = (48, 54)
RIGID_IBUG = slice(17, 48)
"""iBUG indices the jaw and lips do not move: brows, nose and eyes."""


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(..., 478, C) mesh landmarks -> (..., 68, C) iBUG landmarks."""
    return mesh[..., IBUG68_FROM_MESH, :]


def interocular(ibug68: np.ndarray) -> np.ndarray:
    """(..., 68, 2+) -> (...,) distance between the outer eye corners, in the input's units."""
    a, b = EYE_OUTER_CORNERS_IBUG
    return np.linalg.norm(ibug68[..., a, :2] - ibug68[..., b, :2], axis=-1)


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(..., N, 2+) -> (..., 4) tight box x0, y0, x1, y1 around the points."""
    return np.concatenate([points[..., :2].min(axis=-2), points[..., :2].max(axis=-2)], axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True)
class FaceObservation:
    """One face seen in one frame."""

    mesh: np.ndarray
    """(478, 3) float32 landmarks in pixels."""
    box: np.ndarray
    """(4,) x0, y0, x1, y1 tight box of the mesh."""
    confidence: float
    """Score of mediapipe's BlazeFace detector for this face in this frame, 0 when it missed it."""


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hides what mediapipe's C++ side prints to fd 2 while its graphs start (unless debugging).

    Its TFLite/absl start-up lines ignore every log-level setting and are noise to a user.
    """
    if logging.getLogger("talkface").isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C stdio may still hold their lines in its buffer
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceMeshDetector:
    """Runs mediapipe face mesh (tracking mode) + BlazeFace on consecutive frames of one clip.

    The mesh follows faces from frame to frame (so frames must come in order); the detector gives
    each face an independent per-frame confidence. Use as a context manager to free the graphs.
    """

    def __init__(self, max_faces: int = 2, min_detection_confidence: float = 0.5, static_images: bool = False):
        # Imported here: mediapipe's import costs ~1 s and only tracking needs it.
        import mediapipe as mp

        # The graphs start on background threads now and print until the first frame is through.
        self._quiet = contextlib.ExitStack()
        self._quiet.enter_context(_native_stderr_silenced())
        try:
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static_images,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_detection_confidence,
            )
            # Short-range model: faces within ~2 m, i.e. talking-head framing.
            self._detector = mp.solutions.face_detection.FaceDetection(min_detection_confidence=0.2, model_selection=0)
        except BaseException:
            self._quiet.close()  # a failed start must not leave stderr silenced
            raise

    def __enter__(self) -> FaceMeshDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._quiet.close()
        self._mesh.close()
        self._detector.close()

    def __call__(self, frame: np.ndarray) -> list[FaceObservation]:
        """All faces in an `(H, W, 3)` uint8 RGB frame, largest first."""
        height, width = frame.shape[:2]
        frame = np.ascontiguousarray(frame)
        result, found = self._mesh.process(frame), self._detector.process(frame)
        self._quiet.close()
        if not result.multi_face_landmarks:
            return []
        scale = np.array([width, height, width], np.float32)
        meshes = [
            np.array([(p.x, p.y, p.z) for p in face.landmark], np.float32) * scale
            for face in result.multi_face_landmarks
        ]
        detections = []
        for det in found.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array([rel.xmin, rel.ymin, rel.xmin + rel.width, rel.ymin + rel.height]) * scale[[0, 1, 0, 1]]
            detections.append((box, float(det.score[0])))
        faces = []
        for mesh in meshes:
            box = landmark_box(mesh)
            # The detector's box is smaller than the mesh's (no forehead), so IoU ~0.5 is a match.
            matches = [score for det_box, score in detections if box_iou(box, det_box) > 0.3]
            faces.append(FaceObservation(mesh, box, max(matches, default=0.0)))
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return faces


SMALL_FACE_MIN_SIDE = 24
"""Pixels: a smaller box is not a face the face mesh can follow (and BlazeFace finds such specks in noise)."""


def find_small_face(frames: list[np.ndarray], tile_share: float = 0.5) -> list[np.ndarray | None]:
    """Per frame, the x0, y0, x1, y1 box of the most confident face at least `SMALL_FACE_MIN_SIDE`
    wide, searched in overlapping square tiles of `tile_share` of the shorter side (None where
    there is none).

    For faces too small for a search of the whole frame: the face mesh and BlazeFace see a frame
    shrunk to 128-256 px, where a 130 px face in a 1920x1080 frame is 9-17 px, below what they
    find. In a tile it is 2-4 times larger, in reach of BlazeFace's full-range model.
    """
    import mediapipe as mp

    found = []
    with (
        _native_stderr_silenced(),
        mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector,
    ):
        for frame in frames:
            height, width = frame.shape[:2]
            side = max(32, int(tile_share * min(height, width)))
            step = side // 2
            best = None
            for y in range(0, max(1, height - side + step), step):
                for x in range(0, max(1, width - side + step), step):
                    y0, x0 = min(y, max(0, height - side)), min(x, max(0, width - side))
                    tile = np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side])
                    for det in detector.process(tile).detections or []:
                        rel = det.location_data.relative_bounding_box
                        h, w = tile.shape[:2]
                        box = np.array([x0 + rel.xmin * w, y0 + rel.ymin * h, x0 + (rel.xmin + rel.width) * w,
                                        y0 + (rel.ymin + rel.height) * h])  # fmt: skip
                        big_enough = min(box[2] - box[0], box[3] - box[1]) >= SMALL_FACE_MIN_SIDE
                        if big_enough and (best is None or det.score[0] > best[1]):
                            best = (box, float(det.score[0]))
            found.append(None if best is None else best[0])
    return found
