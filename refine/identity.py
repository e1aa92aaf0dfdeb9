"""Identity features of face images: dlib's 128-d face-recognition ResNet.

It is the only pretrained identity network that can be had offline here (it ships in the
`face-recognition-models` package; ArcFace, which Yi et al. use, does not ship in any registry
package). Its embeddings are compared by cosine after L2 normalisation, as the memory's values.

Faces are aligned as dlib aligns them (`get_face_chip`, 150 px), from iBUG-68 landmarks we already
have for every frame, so the same alignment serves a real frame, its render and its refinement:
no detector runs and nothing can fail to be found.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from recon3d.errors import InputError

IDENTITY_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
"""dlib's alignment for its recognition network."""


def _model_file(name: str) -> Path:
    # `import face_recognition_models` needs pkg_resources; finding the package is enough.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("dlib's face models are not installed; run `pip install face-recognition-models`")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise InputError(f"{path}: missing from face-recognition-models; reinstall it")
    return path


@functools.cache
def _recognizer():
    import dlib

    return dlib.face_recognition_model_v1(str(_model_file("dlib_face_recognition_resnet_model_v1.dat")))


def identity_features(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """`(N, 128)` float32 unit identity features of `(N, H, W, 3)` uint8 RGB faces, aligned by
    their `(N, 68, 2)` iBUG-68 landmarks (pixels)."""
    import dlib

    if len(images) != len(landmarks) or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"images {images.shape} and landmarks {landmarks.shape} must pair up, 68 points each")
    features = np.zeros((len(images), IDENTITY_DIM), np.float32)
    for k, (image, points) in enumerate(zip(images, landmarks)):
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
        box = dlib.rectangle(int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1)))
        shape = dlib.full_object_detection(box, [dlib.point(int(round(x)), int(round(y))) for x, y in points])
        chip = dlib.get_face_chip(np.ascontiguousarray(image), shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        features[k] = np.asarray(_recognizer().compute_face_descriptor(chip))
    return features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-8)


def identity_similarity(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`(N,)` cosine of each unit feature to the normalised mean of the `reference` features."""
    mean = reference.mean(0)
    return features @ (mean / np.linalg.norm(mean).clip(1e-8))
