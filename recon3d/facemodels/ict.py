"""ICT-FaceKit (USC Institute for Creative Technologies, MIT licence) as a `FaceModel`.

The user downloads the `FaceXModel/` folder from https://github.com/ICT-VGL/ICT-FaceKit: a
generic neutral head (`generic_neutral_mesh.obj`, 26,719 vertices, quads with UVs, one material
per part), 100 identity shapes (`identity000.obj` ...: PCA modes of scans, each the neutral plus
one standard deviation, as ICT's own `randomize_identity` samples weights from N(0, 1)), 53
ARKit-style expression blendshapes (names in `vertex_indices.json`, weights in [0, 1]) and
`vertex_indices.json` (68 iBUG landmark vertices, rigid and fitting vertex sets).

Conversion (`convert_ict`):
- every vertex is kept, so indices match ICT's; bases are mesh - neutral, so id coefficients
  are unit-variance and exp coefficients are ICT's blendshape weights;
- centimetres x 0.1 -> decimetres, shifted by `geometry.head_origin` (x, y at the landmarks'
  mean, z 1 dm behind the nose tip): the origin is ICT's point (0, -0.26, 3.07) cm, 1.1 cm in
  front of the centre of the head's bounding box (recorded in `info["origin_cm"]`);
- quads -> two triangles each, keeping ICT's counter-clockwise winding (front normals +z);
- the transparent helper layers (M_LacrimalFluid, M_EyeBlend, M_EyeOcclusion, M_EyeLashes) get
  no render faces (their 2,128 vertices stay, unused);
- one UV per vertex (the first one met: seam vertices, 8% of them, keep one side); u's integer
  part is ICT's texture tile (0 face, 1 back of the head, 2 gums and tongue, 3 teeth), the eyes'
  UVs moved from tile 0 to tile 4 so they do not overlap the face;
- regions: "face" (M_Face, 9,409 vertices: face, ears, front of the neck), "skin"
  (`geometry.skin_vertices` on "face"), "mouth_interior" (gums, tongue and the mouth socket of
  M_BackHead), "teeth", "eyes" (sclera and iris), "rigid" and "fitting" (ICT's vertex sets).

Parsing the 154 OBJ files takes ~3 s; `load_ict` caches the result as an uncompressed .npz in
`$TALKFACE_HOME/cache` (keyed by the folder's path, file sizes and times), which loads in ~0.05 s.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from recon3d.errors import InputError
from recon3d.facemodel import FaceModel
from recon3d.facemodels.builtin import load_builtin
from recon3d.facemodels.correspondence import inner_lip_silhouette, tracker_correspondence
from recon3d.facemodels.geometry import head_origin, polygons_to_triangles, skin_vertices
from recon3d.facemodels.paths import cache_dir

log = logging.getLogger("talkface")

ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
NEUTRAL_MESH = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
NUM_IDENTITIES = 100
CM_TO_DM = 0.1
HELPER_MATERIALS = ("M_LacrimalFluid", "M_EyeBlend", "M_EyeOcclusion", "M_EyeLashes")
EYE_MATERIALS = ("M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight")
EYE_UV_TILE = 4
JAW_OPEN, OPEN_JAW = "jawOpen", 0.4
"""The blendshape and weight of the open mouth on which the inner lips' silhouette is found."""
CONVERTER_VERSION = 3  # 2: landmark vertices matched to the tracker's; 3: inner lips on their silhouette
"""Bump when the conversion changes, so cached models are rebuilt."""


def missing_ict_message(where: Path | str) -> str:
    return (
        f"ICT-FaceKit not found at {where}: download FaceXModel from {ICT_URL} (MIT) and pass "
        "--face-model PATH/FaceXModel, or use --face-model builtin"
    )


def is_ict_folder(folder: Path) -> bool:
    return (folder / NEUTRAL_MESH).is_file() and (folder / INDEX_FILE).is_file()


def read_obj_vertices(path: Path) -> np.ndarray:
    """The `v x y z` lines of an OBJ -> (V, 3) float64, fast (one pass over the bytes, ~20 ms for ICT)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror}); {missing_ict_message(path.parent)}") from None
    start = data.find(b"\nv ") + 1
    end = data.find(b"\nvt ", start)
    end = data.find(b"\nf ", start) if end < 0 else end
    tokens = data[start : end if end > 0 else len(data)].split()
    if start == 0 or len(tokens) % 4 or tokens[0::4].count(b"v") != len(tokens) // 4:
        raise InputError(
            f"{path}: not an OBJ mesh with one block of 'v x y z' lines; {missing_ict_message(path.parent)}"
        )
    return np.array(tokens, dtype=object).reshape(-1, 4)[:, 1:].astype(np.float64)


@dataclass(frozen=True)
class ObjMesh:
    vertices: np.ndarray
    """(V, 3) float64."""
    uvs: np.ndarray
    """(T, 2) float64 texture coordinates."""
    polygons: list[list[int]]
    """0-based vertex indices of each polygon, as written (counter-clockwise from outside)."""
    polygon_uvs: list[list[int]]
    """0-based uv indices of each polygon."""
    materials: list[str]
    """Material (usemtl) of each polygon."""


def read_obj(path: Path) -> ObjMesh:
    """A whole OBJ with `f v/vt ...` polygons grouped by `usemtl`."""
    vertices = read_obj_vertices(path)
    uvs, polygons, polygon_uvs, materials = [], [], [], []
    material = ""
    with open(path) as file:
        for line in file:
            if line.startswith("f "):
                corners = [corner.split("/") for corner in line.split()[1:]]
                polygons.append([int(c[0]) - 1 for c in corners])
                polygon_uvs.append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
                materials.append(material)
            elif line.startswith("vt "):
                uvs.append([float(v) for v in line.split()[1:3]])
            elif line.startswith("usemtl "):
                material = line.split()[1]
    return ObjMesh(vertices, np.array(uvs).reshape(-1, 2), polygons, polygon_uvs, materials)


def _material_vertices(mesh: ObjMesh, names: tuple[str, ...]) -> np.ndarray:
    return np.unique([v for poly, mat in zip(mesh.polygons, mesh.materials) if mat in names for v in poly]).astype(
        np.int64
    )


def _mouth_socket(mesh: ObjMesh, face: np.ndarray, gums: np.ndarray) -> np.ndarray:
    """Vertices of the mouth socket: the piece of M_BackHead (without face vertices) nearest the gums."""
    num = len(mesh.vertices)
    in_face = np.zeros(num, dtype=bool)
    in_face[face] = True
    rows, cols = [], []
    for poly, mat in zip(mesh.polygons, mesh.materials):
        if mat == "M_BackHead":
            for a, b in zip(poly, poly[1:] + poly[:1]):
                if not (in_face[a] or in_face[b]):
                    rows.append(a)
                    cols.append(b)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num, num))
    _, labels = connected_components(graph, directed=False)
    back = np.unique(rows)
    pieces = [back[labels[back] == label] for label in np.unique(labels[back])]
    if not pieces or not len(gums):
        return np.zeros(0, dtype=np.int64)
    target = mesh.vertices[gums].mean(axis=0)
    return min(pieces, key=lambda piece: np.linalg.norm(mesh.vertices[piece].mean(axis=0) - target))


def _vertex_uvs(mesh: ObjMesh) -> np.ndarray:
    """One UV per vertex: the first one met in render polygons, then in helper ones."""
    uv_index = np.full(len(mesh.vertices), -1, dtype=np.int64)
    order = sorted(range(len(mesh.polygons)), key=lambda i: mesh.materials[i] in HELPER_MATERIALS)
    for i in reversed(order):  # later writes win, so the first polygon in `order` decides
        uv_index[mesh.polygons[i]] = mesh.polygon_uvs[i]
    uvs = np.where(uv_index[:, None] >= 0, mesh.uvs[np.maximum(uv_index, 0)], 0.0)
    uvs[_material_vertices(mesh, EYE_MATERIALS), 0] += EYE_UV_TILE
    return uvs


def convert_ict(folder: str | Path) -> FaceModel:
    """A FaceXModel folder -> FaceModel (see the module docstring). Raises InputError when malformed."""
    folder = Path(folder)
    if not is_ict_folder(folder):
        raise InputError(missing_ict_message(folder))
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
        expression_names = tuple(index["expressions"])
        landmark_idx = np.array(index["idx_to_landmark_verts"], dtype=np.int64)
        rigid = np.array(index["idx_to_rigid_verts"], dtype=np.int64)
        fitting = np.array(index["idx_to_fitting_verts"], dtype=np.int64)
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(
            f"{folder / INDEX_FILE}: malformed ({type(err).__name__}: {err}); {missing_ict_message(folder)}"
        ) from None
    if landmark_idx.shape != (68,):
        raise InputError(f"{folder / INDEX_FILE}: {len(landmark_idx)} landmark vertices, expected 68")
    mesh = read_obj(folder / NEUTRAL_MESH)
    neutral = mesh.vertices
    num = len(neutral)

    def offsets(names: list[str]) -> np.ndarray:
        out = np.empty((num, 3, len(names)), dtype=np.float32)
        for k, name in enumerate(names):
            path = folder / f"{name}.obj"
            if not path.is_file():
                raise InputError(f"{path} is missing; {missing_ict_message(folder)}")
            shape = read_obj_vertices(path)
            if shape.shape != neutral.shape:
                raise InputError(f"{path}: {len(shape)} vertices, the neutral mesh has {num}")
            out[..., k] = (shape - neutral) * CM_TO_DM
        return out

    id_basis = offsets([f"identity{i:03d}" for i in range(NUM_IDENTITIES)])
    exp_basis = offsets(list(expression_names))

    origin_cm = head_origin(neutral[landmark_idx] * CM_TO_DM) / CM_TO_DM
    render = [p for p, m in zip(mesh.polygons, mesh.materials) if m not in HELPER_MATERIALS]
    face = _material_vertices(mesh, ("M_Face",))
    gums = _material_vertices(mesh, ("M_GumsTongue",))
    mean_shape = (neutral - origin_cm) * CM_TO_DM
    faces = polygons_to_triangles(render)
    # ICT's own landmark vertices suit dlib-style detectors; ours are mediapipe mesh vertices.
    builtin = load_builtin()
    reference = builtin.mean_shape.numpy()
    tracker_idx = tracker_correspondence(
        mean_shape, id_basis, face, landmark_idx, reference, builtin.landmark_idx.numpy()
    )
    ict_landmark_idx, landmark_idx = landmark_idx, tracker_idx[builtin.landmark_idx.numpy()]
    if JAW_OPEN in expression_names:
        open_shape = mean_shape + OPEN_JAW * exp_basis[..., expression_names.index(JAW_OPEN)]
        landmark_idx = inner_lip_silhouette(open_shape, landmark_idx, face)
    regions = {
        "face": face,
        "skin": skin_vertices(mean_shape, faces, face, mean_shape[ict_landmark_idx]),
        "mouth_interior": np.union1d(gums, _mouth_socket(mesh, face, gums)),
        "teeth": _material_vertices(mesh, ("M_Teeth",)),
        "eyes": _material_vertices(mesh, EYE_MATERIALS),
        "rigid": rigid,
        "fitting": fitting,
    }
    return FaceModel(
        "ict-facekit",
        mean_shape,
        id_basis,
        exp_basis,
        faces,
        landmark_idx,
        uvs=_vertex_uvs(mesh),
        regions=regions,
        exp_names=expression_names,
        exp_range=(0.0, 1.0),
        # Identity modes are one standard deviation each. A full blendshape (weight 1) counts as
        # one standard deviation too, so the regulariser weighs both kinds alike.
        id_prior_std=1.0,
        exp_prior_std=1.0,
        info={
            "source": f"ICT-FaceKit ({ICT_URL}, MIT licence)",
            "folder": str(folder.resolve()),
            "origin_cm": [round(float(v), 4) for v in origin_cm],
            "converter_version": CONVERTER_VERSION,
            "ict_landmark_idx": ict_landmark_idx.tolist(),
        },
    )


def _cache_path(folder: Path) -> Path:
    """Cache file keyed by the converter version, the folder's path and its files' sizes and times."""
    digest = hashlib.sha1(f"{CONVERTER_VERSION}\n{folder.resolve()}".encode())
    for path in sorted(folder.glob("*.obj")) + [folder / INDEX_FILE]:
        stat = path.stat()
        digest.update(f"\n{path.name} {stat.st_size} {stat.st_mtime_ns}".encode())
    return cache_dir() / f"ict-{digest.hexdigest()[:16]}.npz"


def load_ict(folder: str | Path, use_cache: bool = True) -> FaceModel:
    """ICT-FaceKit from a FaceXModel folder, through the conversion cache."""
    folder = Path(folder)
    if not is_ict_folder(folder):
        raise InputError(missing_ict_message(folder))
    cached = _cache_path(folder)
    if use_cache and cached.is_file():
        try:
            return FaceModel.load(cached)
        except InputError as err:
            log.warning("ignoring a broken face model cache: %s", err)
    log.info("converting ICT-FaceKit from %s (once; cached in %s)", folder, cached.parent)
    model = convert_ict(folder)
    if use_cache:
        try:
            model.save(cached)
        except OSError as err:
            log.warning("could not cache the converted face model at %s: %s", cached, err)
    return model
