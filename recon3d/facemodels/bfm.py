"""The Basel Face Model 2009 as Deep3DFaceRecon prepares it: `BFM_model_front.mat`.

BFM 2009 (https://faces.dmi.unibas.ch/bfm/) cannot be redistributed; users build
`BFM_model_front.mat` with Deep3DFaceRecon_pytorch (`util/load_mats.py: transferBFM09`, from
`01_MorphableModel.mat` + Guo et al.'s `Exp_Pca.bin`). Its keys (MATLAB arrays, 1-based indices):
meanshape (1, 3V) and idBase (3V, 80) / exBase (3V, 64) in decimetres, meantex (1, 3V) and
texBase (3V, 80) in 0-255, tri (F, 3), keypoints (68,) iBUG order, skinmask (V,) 0/1,
frontmask2_idx (N,) the smaller face area of Deep3D's photometric loss; point_buf and tri_mask2
are not needed (normals and region triangles are derived from `tri`).

Conversion keeps Deep3D's coefficient meaning exactly, so Deep3D coefficient files (257-vectors)
are interchangeable with ours: the mean shape is re-centred on its vertex mean as Deep3D's
`recenter=True` does (not `geometry.head_origin`), textures are divided by 255, `tri` is used as
given. Deep3D's bases are eigenvectors times standard deviations, so coefficients are already
unit-variance: the prior stds are 1. Deep3D regularises them with relative weights id 1.0,
exp 0.8, tex 1.7e-2 (the fitting chooses its own weights). Regions: "face" = all vertices (the
file holds only the face), "skin" = skinmask, "front" = frontmask2_idx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon3d.errors import InputError
from recon3d.facemodel import FaceModel

BFM_HINT = (
    "build BFM_model_front.mat with Deep3DFaceRecon_pytorch (util/load_mats.py) from BFM 2009 "
    "(https://faces.dmi.unibas.ch/bfm/), or use --face-model builtin"
)
BFM_DIMS = {"idBase": 80, "exBase": 64, "texBase": 80}


def load_bfm(path: str | Path) -> FaceModel:
    """Deep3DFaceRecon's BFM_model_front.mat -> FaceModel with layout 80/64/80 (257 coefficients)."""
    from scipy.io import loadmat  # ~0.1 s import, only needed here

    path = Path(path)
    if not path.is_file():
        raise InputError(f"BFM model not found at {path}: {BFM_HINT}")
    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises a zoo of types (ValueError, MatReadError, TypeError...)
        raise InputError(f"{path}: not a readable .mat file ({err}); {BFM_HINT}") from None

    def get(key: str) -> np.ndarray:
        if key not in mat:
            raise InputError(f"{path}: not a Deep3DFaceRecon BFM_model_front.mat (no '{key}'); {BFM_HINT}")
        return np.asarray(mat[key])

    mean_shape = get("meanshape").astype(np.float64).reshape(-1, 3)
    num = len(mean_shape)
    bases = {}
    for key, dim in BFM_DIMS.items():
        basis = get(key)
        if basis.shape != (3 * num, dim):
            raise InputError(f"{path}: {key} is {basis.shape}, expected ({3 * num}, {dim}); {BFM_HINT}")
        bases[key] = basis.astype(np.float32).reshape(num, 3, dim)
    mean_tex = get("meantex").astype(np.float32).reshape(-1, 3)
    faces = get("tri").astype(np.int64) - 1
    keypoints = get("keypoints").astype(np.int64).reshape(-1) - 1
    skin = np.flatnonzero(get("skinmask").reshape(-1) > 0)
    front = get("frontmask2_idx").astype(np.int64).reshape(-1) - 1
    if mean_tex.shape != (num, 3) or faces.ndim != 2 or faces.shape[1] != 3 or keypoints.shape != (68,):
        raise InputError(
            f"{path}: inconsistent shapes (meantex {mean_tex.shape}, tri {faces.shape}, keypoints "
            f"{keypoints.shape} for {num} vertices); {BFM_HINT}"
        )
    for key, index in (("tri", faces), ("keypoints", keypoints), ("frontmask2_idx", front)):
        if index.size and (index.min() < 0 or index.max() >= num):
            raise InputError(f"{path}: {key} has indices outside 1..{num}; {BFM_HINT}")
    if len(skin) == 0:
        skin = np.arange(num)
    return FaceModel(
        "bfm09-deep3d",
        mean_shape - mean_shape.mean(axis=0),
        bases["idBase"],
        bases["exBase"],
        faces,
        keypoints,
        tex_mean=mean_tex / 255.0,
        tex_basis=bases["texBase"] / 255.0,
        regions={"face": np.arange(num), "skin": skin, "front": front},
        id_prior_std=1.0,
        exp_prior_std=1.0,
        tex_prior_std=1.0,
        info={"source": "BFM 2009 via Deep3DFaceRecon BFM_model_front.mat", "file": str(path.resolve())},
    )
