"""3D morphable face models: the coefficient layout, `Coeffs`, and the `FaceModel` module.

Model space: decimetres (Deep3DFaceRecon's BFM scale), x to the image right, y up, z out of the
face toward the camera; the origin is near the head centre. A vertex of a face with identity
coefficients `id` and expression coefficients `exp` is

    mean_shape + id_basis @ id + exp_basis @ exp

and its albedo (linear RGB reflectance in [0, 1]) is `tex_mean + tex_basis @ tex`.

Coefficients of one frame are one vector laid out by `CoeffLayout` with Deep3DFaceRecon's names
and order: id (id_dim), exp (exp_dim), tex (tex_dim), angle (3), gamma (27), trans (3). For the
BFM that is Deep3D's 257-vector (id 0:80, exp 80:144, tex 144:224, angle 224:227, gamma 227:254,
trans 254:257). Pose and lighting are interpreted by the renderer: `angle` = (pitch, yaw, roll)
radians about x, y, z with R = Rz(roll) Ry(yaw) Rx(pitch) and a posed vertex R v + trans;
`gamma` = 9-band SH lighting, 3 colours x 9 bands (R 0-8, G 9-17, B 18-26).

Models are built by the loaders in `recon3d.facemodels` and stored as .npz files of plain arrays
plus JSON metadata (`FaceModel.save` / `FaceModel.load`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon3d.errors import InputError
from recon3d.video import atomic_path

COEFF_NAMES = ("id", "exp", "tex", "angle", "gamma", "trans")
"""Coefficient groups in vector order (Deep3DFaceRecon's `split_coeff` names)."""
ANGLE_DIM, GAMMA_DIM, TRANS_DIM = 3, 27, 3
NUM_LANDMARKS = 68
DEFAULT_ALBEDO = (0.55, 0.45, 0.40)
"""Albedo of every vertex of a model without a texture basis: a mid, skin-ish tone (the actor's
albedo is estimated from the frames later)."""
FACE_MODEL_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Coeffs:
    """One set of coefficients per batch element; every field is (..., n) with the same batch dims."""

    id: Tensor
    """(..., id_dim) identity; unit-variance Gaussian for PCA models (see `FaceModel.id_prior_std`)."""
    exp: Tensor
    """(..., exp_dim) expression: PCA coefficients, or blendshape weights in `FaceModel.exp_range`."""
    tex: Tensor
    """(..., tex_dim) albedo coefficients (tex_dim may be 0)."""
    angle: Tensor
    """(..., 3) radians (pitch, yaw, roll) about x, y, z; R = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    gamma: Tensor
    """(..., 27) SH lighting, 3 colours x 9 bands; Deep3D adds 0.8 to band 0 of each colour."""
    trans: Tensor
    """(..., 3) translation in decimetres, model space (applied after the rotation)."""

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Coeffs:
        return Coeffs(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    @property
    def batch_shape(self) -> torch.Size:
        return self.angle.shape[:-1]

    def detach(self) -> Coeffs:
        return self._map(Tensor.detach)

    def to(self, *args: Any, **kwargs: Any) -> Coeffs:
        """Like `Tensor.to` (device and/or dtype) on every field."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def __getitem__(self, index: Any) -> Coeffs:
        """Indexes the batch dims of every field, e.g. `coeffs[3]` or `coeffs[10:20]`."""
        return self._map(lambda t: t[index])

    def as_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in COEFF_NAMES}


@dataclass(frozen=True)
class CoeffLayout:
    """The ordered (name, size) table of a model's coefficient vector."""

    id_dim: int
    exp_dim: int
    tex_dim: int

    @property
    def sizes(self) -> tuple[tuple[str, int], ...]:
        return (
            ("id", self.id_dim),
            ("exp", self.exp_dim),
            ("tex", self.tex_dim),
            ("angle", ANGLE_DIM),
            ("gamma", GAMMA_DIM),
            ("trans", TRANS_DIM),
        )

    @property
    def total(self) -> int:
        return sum(size for _, size in self.sizes)

    def slice(self, name: str) -> slice:
        """Where group `name` sits in the coefficient vector."""
        start = 0
        for key, size in self.sizes:
            if key == name:
                return slice(start, start + size)
            start += size
        raise KeyError(f"no coefficient group {name!r}; groups are {COEFF_NAMES}")

    def split(self, x: Tensor) -> Coeffs:
        """(..., total) vector -> `Coeffs` of views into it."""
        if x.shape[-1] != self.total:
            raise ValueError(f"coefficient vector has {x.shape[-1]} entries, layout {self} needs {self.total}")
        return Coeffs(**{name: x[..., self.slice(name)] for name in COEFF_NAMES})

    def join(self, coeffs: Coeffs) -> Tensor:
        """`Coeffs` -> (..., total) vector."""
        parts = []
        for name, size in self.sizes:
            part = getattr(coeffs, name)
            if part.shape[-1] != size:
                raise ValueError(f"coefficient group {name!r} has {part.shape[-1]} entries, layout needs {size}")
            parts.append(part)
        return torch.cat(parts, dim=-1)

    def zeros(
        self,
        batch: int | tuple[int, ...] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Coeffs:
        """All-zero coefficients: mean face and albedo, no rotation or translation, gamma 0 (ambient)."""
        batch = (batch,) if isinstance(batch, int) else tuple(batch)
        return self.split(torch.zeros(*batch, self.total, device=device, dtype=dtype))


def _as_tensor(value: Any, dtype: torch.dtype) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(dtype=dtype).contiguous()
    return torch.as_tensor(np.ascontiguousarray(value), dtype=dtype)


class FaceModel(nn.Module):
    """A linear 3D morphable model of the face: mean, identity and expression bases, albedo.

    The bases are non-persistent buffers: they follow `.to(device)` but stay out of the
    `state_dict` of modules that hold a model (they come from the model file, not from training).
    """

    mean_shape: Tensor
    """(V, 3) decimetres."""
    id_basis: Tensor
    """(V, 3, id_dim) decimetres per unit coefficient."""
    exp_basis: Tensor
    """(V, 3, exp_dim) decimetres per unit coefficient."""
    tex_mean: Tensor
    """(V, 3) albedo in [0, 1]."""
    tex_basis: Tensor
    """(V, 3, tex_dim) albedo per unit coefficient."""
    faces: Tensor
    """(F, 3) long vertex indices of the triangles to render, counter-clockwise seen from outside."""
    landmark_idx: Tensor
    """(68,) long vertices of the iBUG-68 landmarks, in `recon3d.landmarks.IBUG68_FROM_MESH` order."""
    uvs: Tensor
    """(V, 2) texture coordinates (v up), or (0, 2) when the model has none."""

    def __init__(
        self,
        name: str,
        mean_shape: Any,
        id_basis: Any,
        exp_basis: Any,
        faces: Any,
        landmark_idx: Any,
        *,
        tex_mean: Any | None = None,
        tex_basis: Any | None = None,
        uvs: Any | None = None,
        regions: Mapping[str, Any] | None = None,
        exp_names: tuple[str, ...] | None = None,
        exp_range: tuple[float, float] | None = None,
        id_prior_std: float = 1.0,
        exp_prior_std: float = 1.0,
        tex_prior_std: float = 1.0,
        info: Mapping[str, Any] | None = None,
    ):
        """Arrays may be numpy or torch; they are stored as float32 / int64 buffers.

        `regions` maps names to vertex indices; "face" defaults to all vertices, "skin" to
        "face", and "landmarks" to the landmark vertices (so `subset("landmarks")` is a 68-vertex
        model for landmark-only fitting). `info` is JSON-serialisable provenance.
        """
        super().__init__()
        mean_shape = _as_tensor(mean_shape, torch.float32)
        num_vertices = mean_shape.shape[0]
        if mean_shape.shape != (num_vertices, 3):
            raise ValueError(f"mean_shape must be (V, 3), got {tuple(mean_shape.shape)}")
        tex_mean = (
            torch.tensor(DEFAULT_ALBEDO).expand(num_vertices, 3)
            if tex_mean is None
            else _as_tensor(tex_mean, torch.float32)
        )
        tex_basis = torch.zeros(num_vertices, 3, 0) if tex_basis is None else tex_basis
        uvs = torch.zeros(0, 2) if uvs is None else uvs
        arrays = {
            "mean_shape": mean_shape,
            "id_basis": _as_tensor(id_basis, torch.float32),
            "exp_basis": _as_tensor(exp_basis, torch.float32),
            "tex_mean": tex_mean.contiguous(),
            "tex_basis": _as_tensor(tex_basis, torch.float32),
            "faces": _as_tensor(faces, torch.int64),
            "landmark_idx": _as_tensor(landmark_idx, torch.int64).reshape(-1),
            "uvs": _as_tensor(uvs, torch.float32),
        }
        for key in ("id_basis", "exp_basis", "tex_basis"):
            if arrays[key].ndim != 3 or arrays[key].shape[:2] != (num_vertices, 3):
                raise ValueError(f"{key} must be (V={num_vertices}, 3, K), got {tuple(arrays[key].shape)}")
        if arrays["tex_mean"].shape != (num_vertices, 3):
            raise ValueError(f"tex_mean must be (V, 3), got {tuple(arrays['tex_mean'].shape)}")
        faces_t = arrays["faces"]
        if (
            faces_t.ndim != 2
            or faces_t.shape[1] != 3
            or (faces_t.numel() and (faces_t.min() < 0 or faces_t.max() >= num_vertices))
        ):
            raise ValueError(f"faces must be (F, 3) indices into {num_vertices} vertices")
        if arrays["landmark_idx"].shape != (NUM_LANDMARKS,) or arrays["landmark_idx"].max() >= num_vertices:
            raise ValueError(f"landmark_idx must be {NUM_LANDMARKS} vertex indices")
        if arrays["uvs"].shape not in ((num_vertices, 2), (0, 2)):
            raise ValueError(f"uvs must be (V, 2) or (0, 2), got {tuple(arrays['uvs'].shape)}")
        for key, value in arrays.items():
            self.register_buffer(key, value, persistent=False)

        self.name = name
        self.layout = CoeffLayout(self.id_basis.shape[2], self.exp_basis.shape[2], self.tex_basis.shape[2])
        self.exp_names = (
            tuple(exp_names) if exp_names is not None else tuple(f"pc{i}" for i in range(self.layout.exp_dim))
        )
        if len(self.exp_names) != self.layout.exp_dim:
            raise ValueError(f"{len(self.exp_names)} exp_names for {self.layout.exp_dim} expression coefficients")
        self.exp_range = None if exp_range is None else (float(exp_range[0]), float(exp_range[1]))
        self.id_prior_std = float(id_prior_std)
        self.exp_prior_std = float(exp_prior_std)
        self.tex_prior_std = float(tex_prior_std)
        self.info = dict(info or {})

        regions = {key: _as_tensor(value, torch.int64).reshape(-1) for key, value in (regions or {}).items()}
        regions.setdefault("face", torch.arange(num_vertices))
        regions.setdefault("skin", regions["face"])
        regions.setdefault("landmarks", arrays["landmark_idx"])
        self._region_names: tuple[str, ...] = tuple(regions)
        for key, index in regions.items():
            if not key.isidentifier():
                raise ValueError(f"region name {key!r} must be an identifier")
            index = torch.unique(index)  # sorted, so subsets keep the vertex order
            if index.numel() and (index.min() < 0 or index.max() >= num_vertices):
                raise ValueError(f"region {key!r} has vertex indices outside 0..{num_vertices - 1}")
            mask = torch.zeros(num_vertices, dtype=torch.bool)
            mask[index] = True
            self.register_buffer(f"_rverts_{key}", index, persistent=False)
            self.register_buffer(f"_rfaces_{key}", faces_t[mask[faces_t].all(dim=1)], persistent=False)

    # ---------------------------------------------------------------- sizes and regions

    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def coeff_dim(self) -> int:
        return self.layout.total

    @property
    def has_uvs(self) -> bool:
        return self.uvs.shape[0] > 0

    @property
    def regions(self) -> dict[str, Tensor]:
        """Region name -> (N,) sorted long vertex indices: "face" (the surface to fit and render
        photometrically), "skin" (face minus lips, eyes, brows, nostrils), "landmarks", and
        model-specific ones ("mouth_interior", "teeth", "eyes", ...)."""
        return {key: getattr(self, f"_rverts_{key}") for key in self._region_names}

    def region(self, name: str) -> Tensor:
        """(N,) sorted long vertex indices of region `name`."""
        if name not in self._region_names:
            raise KeyError(f"{self.name} has no region {name!r}; it has {', '.join(self._region_names)}")
        return getattr(self, f"_rverts_{name}")

    def region_mask(self, name: str) -> Tensor:
        """(V,) bool, True on the vertices of region `name`."""
        mask = torch.zeros(self.num_vertices, dtype=torch.bool, device=self.faces.device)
        mask[self.region(name)] = True
        return mask

    def region_faces(self, name: str) -> Tensor:
        """(F_r, 3) long triangles of `faces` whose three vertices all lie in region `name`."""
        self.region(name)  # the error message for an unknown name
        return getattr(self, f"_rfaces_{name}")

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, vertices={self.num_vertices}, faces={self.num_faces}, "
            f"id={self.layout.id_dim}, exp={self.layout.exp_dim}, tex={self.layout.tex_dim}, "
            f"regions={list(self._region_names)}"
        )

    # ---------------------------------------------------------------- evaluation

    @staticmethod
    def _combine(basis: Tensor, coeffs: Tensor, name: str) -> Tensor:
        """(V, 3, K) basis, (..., K) coeffs -> (..., V * 3) offsets, one matrix product."""
        if coeffs.shape[-1] != basis.shape[2]:
            raise ValueError(f"{name} coefficients have {coeffs.shape[-1]} entries, the model {basis.shape[2]}")
        return F.linear(coeffs, basis.view(basis.shape[0] * 3, basis.shape[2]))

    def shape(self, id: Tensor, exp: Tensor) -> Tensor:
        """(..., id_dim), (..., exp_dim) -> (..., V, 3) vertices in model space, decimetres.

        Batch dims broadcast, so one identity (1, id_dim) can serve a batch of expressions.
        """
        offsets = self._combine(self.id_basis, id, "id") + self._combine(self.exp_basis, exp, "exp")
        return self.mean_shape + offsets.unflatten(-1, (self.num_vertices, 3))

    def albedo(self, tex: Tensor | None = None) -> Tensor:
        """(..., tex_dim) -> (..., V, 3) albedo in [0, 1] (not clamped); None -> the (V, 3) mean."""
        if tex is None:
            return self.tex_mean
        return self.tex_mean + self._combine(self.tex_basis, tex, "tex").unflatten(-1, (self.num_vertices, 3))

    def landmarks(self, vertices: Tensor) -> Tensor:
        """(..., V, 3) vertices -> (..., 68, 3) iBUG-68 landmark vertices."""
        return vertices[..., self.landmark_idx, :]

    # ---------------------------------------------------------------- derived models

    def subset(self, *regions: str) -> FaceModel:
        """A model on only the vertices of the union of `regions`: faces re-indexed, regions
        intersected.

        Landmarks must lie in it. Regions left empty are dropped. Used by fitting, which needs
        only the face surface (e.g. 9,409 of ICT-FaceKit's 26,719 vertices), and by generation
        (the face with the mouth interior and teeth).
        """
        if not regions:
            raise ValueError("subset needs at least one region")
        region = "+".join(regions)
        keep = torch.unique(torch.cat([self.region(name).cpu() for name in regions]))
        remap = torch.full((self.num_vertices,), -1, dtype=torch.int64)
        remap[keep] = torch.arange(len(keep))
        landmarks = remap[self.landmark_idx.cpu()]
        if (landmarks < 0).any():
            missing = torch.nonzero(landmarks < 0).flatten().tolist()
            raise ValueError(f"{self.name}: landmarks {missing} lie outside region {region!r}")
        faces = remap[self.faces.cpu()]
        kept = {}
        for key, index in self.regions.items():
            index = remap[index.cpu()]
            if (index >= 0).any():
                kept[key] = index[index >= 0]
        model = FaceModel(
            f"{self.name}[{region}]",
            self.mean_shape.cpu()[keep],
            self.id_basis.cpu()[keep],
            self.exp_basis.cpu()[keep],
            faces[(faces >= 0).all(dim=1)],
            landmarks,
            tex_mean=self.tex_mean.cpu()[keep],
            tex_basis=self.tex_basis.cpu()[keep],
            uvs=self.uvs.cpu()[keep] if self.has_uvs else None,
            regions=kept,
            exp_names=self.exp_names,
            exp_range=self.exp_range,
            id_prior_std=self.id_prior_std,
            exp_prior_std=self.exp_prior_std,
            tex_prior_std=self.tex_prior_std,
            info={**self.info, "subset_of": self.name},
        )
        return model.to(self.mean_shape.device)

    # ---------------------------------------------------------------- files

    def metadata(self) -> dict[str, Any]:
        return {
            "format_version": FACE_MODEL_FORMAT_VERSION,
            "name": self.name,
            "units": "decimetres",
            "exp_names": list(self.exp_names),
            "exp_range": list(self.exp_range) if self.exp_range is not None else None,
            "id_prior_std": self.id_prior_std,
            "exp_prior_std": self.exp_prior_std,
            "tex_prior_std": self.tex_prior_std,
            "regions": list(self._region_names),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike, compress: bool = False) -> None:
        """Writes an .npz of plain arrays + JSON metadata (no pickles), atomically.

        Uncompressed by default: a 50 MB model then loads in a fraction of a second.
        """
        arrays = {
            "mean_shape": self.mean_shape,
            "id_basis": self.id_basis,
            "exp_basis": self.exp_basis,
            "tex_mean": self.tex_mean,
            "tex_basis": self.tex_basis,
            "uvs": self.uvs,
        }
        out = {key: value.detach().cpu().numpy().astype(np.float32) for key, value in arrays.items()}
        out["faces"] = self.faces.cpu().numpy().astype(np.int32)
        out["landmark_idx"] = self.landmark_idx.cpu().numpy().astype(np.int32)
        for key, index in self.regions.items():
            out[f"region_{key}"] = index.cpu().numpy().astype(np.int32)
        out["format_version"] = np.array(FACE_MODEL_FORMAT_VERSION)
        out["metadata"] = np.array(json.dumps(self.metadata()))
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            (np.savez_compressed if compress else np.savez)(file, **out)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceModel:
        """Reads a file written by `save`; a missing or malformed file raises InputError."""
        path = Path(path)
        hint = "convert the face model again (recon3d.facemodels.load_face_model on its source)"
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: not a readable face model file ({err}); {hint}") from None
        try:
            version = int(arrays["format_version"])
            if version != FACE_MODEL_FORMAT_VERSION:
                raise InputError(f"{path}: face model format {version}, expected {FACE_MODEL_FORMAT_VERSION}; {hint}")
            meta = json.loads(str(arrays["metadata"]))
            regions = {key: arrays[f"region_{key}"] for key in meta["regions"]}
            return cls(
                meta["name"],
                arrays["mean_shape"],
                arrays["id_basis"],
                arrays["exp_basis"],
                arrays["faces"].astype(np.int64),
                arrays["landmark_idx"].astype(np.int64),
                tex_mean=arrays["tex_mean"],
                tex_basis=arrays["tex_basis"],
                uvs=arrays["uvs"] if len(arrays["uvs"]) else None,
                regions={key: value.astype(np.int64) for key, value in regions.items()},
                exp_names=tuple(meta["exp_names"]),
                exp_range=meta["exp_range"],
                id_prior_std=meta["id_prior_std"],
                exp_prior_std=meta["exp_prior_std"],
                tex_prior_std=meta["tex_prior_std"],
                info=meta["info"],
            )
        except InputError:
            raise
        except (KeyError, ValueError, TypeError) as err:
            raise InputError(f"{path}: malformed face model file ({type(err).__name__}: {err}); {hint}") from None
