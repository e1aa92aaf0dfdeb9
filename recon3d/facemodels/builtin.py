"""The built-in face model: a PCA model learned from mediapipe face meshes, shipped with talkface.

No download and no licence question: it is derived statistics of the 468-vertex mediapipe face
mesh tracked on talking-head clips (`scripts/build_face_model.py`, `build_mediapipe_face_model`).

How it is built from per-clip (T, 478, 3) meshes in frame pixels (`FaceTrack.mesh`):
- the 468 mesh vertices (the 10 iris points are not in the tesselation) are taken to model axes
  as (x, -y, -z) (mediapipe: y down, smaller z nearer the camera);
- every frame is aligned to an iterated mean by a similarity transform (generalised Procrustes),
  first on all vertices, then on the 40% that move least within a clip (forehead, nose, temples),
  so expressions do not leak into the pose;
- the mean is turned to face +z (`frontal_rotation`: x along symmetric landmark pairs, pitch as
  in ICT-FaceKit's neutral head), scaled so the outer eye corners (iBUG 36/45 = mesh 33/263) are
  0.93 dm apart (an adult average; anthropometric tables give ~0.88-0.92 dm, ICT-FaceKit's
  neutral 0.89 dm), and placed by `geometry.head_origin` (origin 1 dm behind the nose tip);
- identity basis: PCA of the per-clip mean shapes (at most clips - 1 modes); expression basis:
  PCA of every frame's offset from its clip mean. Each mode is scaled by its standard deviation,
  so coefficients are unit-variance (prior std 1);
- triangles: mediapipe ships only the edges of its tesselation; the faces are the 3-cycles of
  that graph minus the spurious ones (`geometry.triangles_from_edges`: 852 triangles, each edge
  in at most two), wound counter-clockwise from outside (`geometry.orient_faces`);
- UVs: frontal orthographic projection of the mean, scaled into [0, 1] keeping the aspect (v up);
- regions: "face" = all vertices; "skin" = `geometry.skin_vertices` minus mediapipe's lip, eye
  and eyebrow contour vertices.

Limits: 468 vertices, 852 triangles (a coarse surface); the eyes and the mouth are holes (no
eyeballs, teeth, tongue or mouth interior); no albedo basis (constant `facemodel.DEFAULT_ALBEDO`);
the face ends at mediapipe's face oval (no ears, neck or back of the head); shapes are what
mediapipe's regressor estimates from single images (depth learned, not measured), so they are
smoother than scans and can change a little with head pose, which the expression basis partly
absorbs; the identity basis comes from only as many identities as clips (20 for the shipped
model), and similarity alignment removes head size, so it spans much less than a scan-based
model (ICT-FaceKit: 100 modes from scans).
"""

from __future__ import annotations

from importlib.resources import as_file, files

import numpy as np

from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.facemodels.geometry import head_origin, orient_faces, skin_vertices, triangles_from_edges
from recon3d.landmarks import IBUG68_FROM_MESH

BUILTIN_ASSET = "mediapipe_face.npz"
NUM_MESH_VERTICES = 468
LEFT_EYE_CORNER, RIGHT_EYE_CORNER = 263, 33
EYE_CORNER_DISTANCE = 0.93
"""Decimetres between the outer eye corners of the mean shape."""
SYMMETRIC_PAIRS = ((36, 45), (39, 42), (31, 35), (48, 54), (17, 26), (21, 22))
"""iBUG landmark pairs (subject's right, left) that fix the model's x axis."""
FRONTAL_PITCH_DEG = 12.9
"""Angle of the eye-corners-to-mouth-corners line from the vertical, mouth forward (ICT neutral)."""
RIGID_FRACTION = 0.4
"""Share of vertices (those moving least within a clip) that the second alignment pass uses."""


def mediapipe_triangles() -> np.ndarray:
    """(852, 3) unoriented triangles of mediapipe's face mesh tesselation."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION  # ~1 s import

    return triangles_from_edges(FACEMESH_TESSELATION)


def mediapipe_feature_vertices() -> np.ndarray:
    """Vertices of mediapipe's lip, eye and eyebrow contours (not skin)."""
    from mediapipe.python.solutions import face_mesh_connections as connections

    sets = ("LIPS", "LEFT_EYE", "RIGHT_EYE", "LEFT_EYEBROW", "RIGHT_EYEBROW")
    return np.unique([v for name in sets for edge in getattr(connections, f"FACEMESH_{name}") for v in edge])


def align_similarity(frames: np.ndarray, reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, P, 3) frames each moved onto (P, 3) `reference` by the weighted least-squares similarity
    transform (Umeyama 1991: rotation, uniform scale, translation) -> (N, P, 3)."""
    w = weights / weights.sum()
    mu_x = np.einsum("p,npc->nc", w, frames)
    mu_y = w @ reference
    x = frames - mu_x[:, None]
    y = reference - mu_y
    cov = np.einsum("p,npi,pj->nij", w, x, y)  # (N, 3, 3)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones((len(frames), 3))
    d[:, 2] = np.sign(np.linalg.det(u @ vt))
    rot = np.einsum("nji,nj,nkj->nik", vt, d, u)  # V diag(d) U^T: maps x onto y
    scale = (s * d).sum(axis=1) / np.einsum("p,npc->n", w, x**2)
    return scale[:, None, None] * np.einsum("nij,npj->npi", rot, x) + mu_y


def _normalised(shape: np.ndarray, weights: np.ndarray, eye_corner_distance: float) -> np.ndarray:
    centre = weights @ shape / weights.sum()
    scale = eye_corner_distance / np.linalg.norm(shape[LEFT_EYE_CORNER] - shape[RIGHT_EYE_CORNER])
    return (shape - centre) * scale


def generalised_procrustes(
    frames: np.ndarray, weights: np.ndarray, eye_corner_distance: float, iterations: int = 20
) -> np.ndarray:
    """(N, P, 3) frames aligned to their iterated mean (scaled to `eye_corner_distance`) -> (N, P, 3)."""
    reference = _normalised(frames[0], weights, eye_corner_distance)
    for _ in range(iterations):
        aligned = align_similarity(frames, reference, weights)
        mean = _normalised(aligned.mean(axis=0), weights, eye_corner_distance)
        change = np.abs(mean - reference).max()
        reference = mean
        if change < 1e-7:
            break
    return align_similarity(frames, reference, weights)


def frontal_rotation(landmarks: np.ndarray) -> np.ndarray:
    """(68, 3) iBUG landmarks -> (3, 3) rotation R (apply as R @ v) that makes the face frontal.

    x runs along the mean of left-minus-right symmetric landmark pairs; the eye-to-mouth
    direction is put in the y-z plane with the mouth corners `FRONTAL_PITCH_DEG` in front of the
    outer eye corners, as in ICT-FaceKit's neutral head.
    """
    right, left = np.array(SYMMETRIC_PAIRS).T
    x_axis = (landmarks[left] - landmarks[right]).sum(axis=0)
    x_axis /= np.linalg.norm(x_axis)
    up = landmarks[[36, 45]].mean(axis=0) - landmarks[[48, 54]].mean(axis=0)
    up -= (up @ x_axis) * x_axis
    up /= np.linalg.norm(up)
    to_face = np.stack([x_axis, up, np.cross(x_axis, up)])  # rows: the face's axes
    tilt = np.radians(-FRONTAL_PITCH_DEG)
    pitch = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    return pitch @ to_face


def _pca(rows: np.ndarray, dim: int, dof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D) centred rows -> (dim, D) modes scaled by their std, (dim,) stds, (N,) explained-variance ratios."""
    _, sing, vt = np.linalg.svd(rows, full_matrices=False)
    ratio = sing**2 / (sing**2).sum()
    std = sing[:dim] / np.sqrt(max(dof, 1))
    modes = vt[:dim]
    # A deterministic sign: each mode's largest entry is positive.
    signs = np.sign(modes[np.arange(len(modes)), np.abs(modes).argmax(axis=1)])
    return modes * (signs * std)[:, None], std, ratio


def build_mediapipe_face_model(
    meshes: list[np.ndarray], id_dim: int = 16, exp_dim: int = 32, eye_corner_distance: float = EYE_CORNER_DISTANCE
) -> FaceModel:
    """Per-clip (T, 478 or 468, 3) mediapipe meshes in frame pixels -> the built-in FaceModel.

    `id_dim` is capped at len(meshes) - 1. See the module docstring for the method.
    """
    if len(meshes) < 2:
        raise ValueError("need meshes of at least two clips (identities)")
    id_dim = min(id_dim, len(meshes) - 1)
    frames = np.concatenate([m[:, :NUM_MESH_VERTICES] for m in meshes]).astype(np.float64)
    frames *= np.array([1.0, -1.0, -1.0])  # pixels (y down, z away) -> model axes (y up, z toward the camera)
    clip = np.repeat(np.arange(len(meshes)), [len(m) for m in meshes])
    counts = np.bincount(clip)

    def clip_means(aligned: np.ndarray) -> np.ndarray:
        sums = np.zeros((len(meshes), *aligned.shape[1:]))
        np.add.at(sums, clip, aligned)
        return sums / counts[:, None, None]

    weights = np.ones(NUM_MESH_VERTICES)
    aligned = generalised_procrustes(frames, weights, eye_corner_distance)
    motion = ((aligned - clip_means(aligned)[clip]) ** 2).sum(axis=2).mean(axis=0)  # (P,)
    weights = (motion <= np.quantile(motion, RIGID_FRACTION)).astype(np.float64)
    aligned = generalised_procrustes(frames, weights, eye_corner_distance)

    # Face the mean toward +z and fix its size exactly (GPA's mean inherits the first frame's pose).
    mean_shape = clip_means(aligned).mean(axis=0)
    rotation = frontal_rotation(mean_shape[IBUG68_FROM_MESH])
    scale = eye_corner_distance / np.linalg.norm(mean_shape[LEFT_EYE_CORNER] - mean_shape[RIGHT_EYE_CORNER])
    aligned = scale * aligned @ rotation.T
    means = clip_means(aligned)  # (C, P, 3)
    mean_shape = means.mean(axis=0)
    identities = (means - mean_shape).reshape(len(meshes), -1)
    id_modes, id_std, id_ratio = _pca(identities, id_dim, len(meshes) - 1)
    residuals = (aligned - means[clip]).reshape(len(frames), -1)
    exp_modes, exp_std, exp_ratio = _pca(residuals, exp_dim, len(frames) - len(meshes))

    origin = head_origin(mean_shape[IBUG68_FROM_MESH])
    mean_shape = mean_shape - origin
    faces = orient_faces(mediapipe_triangles(), mean_shape, np.zeros(3))
    xy = mean_shape[:, :2]
    uvs = (xy - xy.min(axis=0)) / (xy.max(axis=0) - xy.min(axis=0)).max()
    everything = np.arange(NUM_MESH_VERTICES)
    skin = skin_vertices(mean_shape, faces, everything, mean_shape[IBUG68_FROM_MESH])
    skin = np.setdiff1d(skin, mediapipe_feature_vertices())
    return FaceModel(
        "mediapipe-builtin",
        mean_shape,
        id_modes.reshape(id_dim, NUM_MESH_VERTICES, 3).transpose(1, 2, 0),
        exp_modes.reshape(exp_dim, NUM_MESH_VERTICES, 3).transpose(1, 2, 0),
        faces,
        IBUG68_FROM_MESH,
        uvs=uvs,
        regions={"face": everything, "skin": skin},
        info={
            "source": "PCA of mediapipe face meshes (recon3d.facemodels.builtin)",
            "clips": len(meshes),
            "frames": len(frames),
            "eye_corner_distance_dm": eye_corner_distance,
            "id_explained": round(float(id_ratio[:id_dim].sum()), 4),
            "exp_explained": round(float(exp_ratio[:exp_dim].sum()), 4),
            "id_ratio": [round(float(r), 5) for r in id_ratio[:id_dim]],
            "exp_ratio": [round(float(r), 5) for r in exp_ratio[:exp_dim]],
            "id_std_dm": [round(float(s), 6) for s in id_std],
            "exp_std_dm": [round(float(s), 6) for s in exp_std],
            "id_total_variance_dm2": float((identities**2).sum() / (len(meshes) - 1)),
            "exp_total_variance_dm2": float((residuals**2).sum() / (len(frames) - len(meshes))),
        },
    )


def load_builtin() -> FaceModel:
    """The shipped built-in model (recon3d/assets/mediapipe_face.npz)."""
    resource = files("recon3d") / "assets" / BUILTIN_ASSET
    if not resource.is_file():
        raise InputError(
            f"the built-in face model {BUILTIN_ASSET} is missing from this installation; reinstall talkface "
            "or build it with scripts/build_face_model.py"
        )
    with as_file(resource) as path:
        return FaceModel.load(path)
