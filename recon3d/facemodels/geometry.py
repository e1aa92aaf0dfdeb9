"""Mesh helpers shared by the face model loaders (numpy, model space: x right, y up, z to the camera).

Triangulation and orientation (`polygons_to_triangles`, `triangles_from_edges`, `orient_faces`),
the common origin rule (`head_origin`) and the landmark-based skin region (`skin_vertices`).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence

import numpy as np

from recon3d.landmarks import BROWS_IBUG, EYES_IBUG, OUTER_LIPS_IBUG

ORIGIN_BEHIND_NOSE_TIP = 1.0
"""Decimetres from the nose tip back to the model origin, about the head's centre."""


def polygons_to_triangles(polygons: Iterable[Sequence[int]]) -> np.ndarray:
    """Fan-triangulates polygons (triangles, quads, ...) keeping their winding -> (F, 3) int64."""
    triangles = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3), (F, 3) -> (F, 3) unit normals, right-handed: counter-clockwise faces point at the viewer."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3), (F, 3) -> (V, 3) unit area-weighted vertex normals (0 for unused vertices)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    weighted = np.cross(b - a, c - a)  # length = twice the area
    normals = np.zeros_like(vertices, dtype=np.float64)
    for i in range(3):
        np.add.at(normals, faces[:, i], weighted)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def triangles_from_edges(edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """The triangles of a triangulated surface given only its edges -> (F, 3), unoriented.

    Every 3-cycle of the edge graph is a candidate. A 3-cycle that is not a face (three faces
    around a vertex whose outer edges close a loop) makes its edges belong to three triangles
    instead of at most two; such cycles are dropped, worst first, until the surface is manifold.
    """
    edges = {tuple(sorted(e)) for e in edges if e[0] != e[1]}
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}

    def edge_uses() -> Counter:
        return Counter(e for t in triangles for e in itertools.combinations(t, 2))

    uses = edge_uses()
    while max(uses.values(), default=0) > 2:
        # The cycle with the most over-used edges is the spurious one (all three, for a true gap).
        worst = max(triangles, key=lambda t: (sum(uses[e] > 2 for e in itertools.combinations(t, 2)), t))
        triangles.discard(worst)
        uses = edge_uses()
    return np.array(sorted(triangles), dtype=np.int64).reshape(-1, 3)


def orient_faces(faces: np.ndarray, vertices: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Winds every triangle counter-clockwise seen from outside -> (F, 3).

    Orientation is propagated across shared edges (neighbours traverse an edge in opposite
    directions), then each connected piece is flipped if its normals point, on average, toward
    `centre` (a point inside the head) rather than away from it.
    """
    faces = faces.copy()
    by_edge: dict[tuple[int, int], list[int]] = defaultdict(list)
    for f, tri in enumerate(faces):
        for i in range(3):
            by_edge[tuple(sorted((tri[i], tri[(i + 1) % 3])))].append(f)
    done = np.zeros(len(faces), dtype=bool)
    for seed in range(len(faces)):
        if done[seed]:
            continue
        piece, queue = [seed], deque([seed])
        done[seed] = True
        while queue:
            f = queue.popleft()
            tri = faces[f]
            for i in range(3):
                a, b = tri[i], tri[(i + 1) % 3]
                for g in by_edge[tuple(sorted((a, b)))]:
                    if done[g]:
                        continue
                    other = list(faces[g])
                    # Consistent neighbours hold the edge as (b, a); one holding (a, b) is flipped.
                    if any(other[j] == a and other[(j + 1) % 3] == b for j in range(3)):
                        faces[g] = faces[g][::-1]
                    done[g] = True
                    piece.append(g)
                    queue.append(g)
        piece_faces = faces[piece]
        normals = face_normals(vertices, piece_faces)
        outward = vertices[piece_faces].mean(axis=1) - centre
        if (normals * outward).sum() < 0:
            faces[piece] = piece_faces[:, ::-1]
    return faces


def head_origin(landmarks: np.ndarray, nose_tip: int = 30) -> np.ndarray:
    """(68, 3) iBUG landmarks -> (3,) model origin: x, y at the landmarks' mean, z 1 dm behind the nose tip.

    Every model here uses this rule, so a face centred in an aligned crop has a translation near 0
    whatever the model (Deep3D's BFM origin, the centroid of its face surface, sits close to it).
    """
    return np.array([*landmarks[:, :2].mean(axis=0), landmarks[nose_tip, 2] - ORIGIN_BEHIND_NOSE_TIP])


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N, 2) points, (P, 2) closed polygon -> (N,) bool, by even-odd ray casting."""
    x, y = points[:, :1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (x < x_at)).sum(axis=1) % 2) == 1


def _scaled(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    centre = points.mean(axis=0)
    return centre + (points - centre) * np.array([sx, sy])


def skin_vertices(vertices: np.ndarray, faces: np.ndarray, candidates: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Vertices of `candidates` on facial skin, from the frontal (x, y) layout of the iBUG landmarks.

    Keeps what faces the camera (vertex normal z > 0, not behind the jaw line's ends in z: no
    nostril insides, no ears) and lies inside the face outline (the jaw line 0-16 closed by the
    brows raised by half the eye-corner distance d, roughly the hairline); drops the lips (outer
    lip contour enlarged by 15%), the eyes with their lids (eye contour x1.3 wide, x2 high), the
    brows (a band of +-0.07 d around 17-21 / 22-26) and the nostrils (between the alae 31, 35,
    from the subnasale 33 up to halfway to the nose tip). A rough, geometric cut: the photometric
    loss needs skin whose colour follows the lighting, not exact anatomy.
    """
    facing = vertex_normals(vertices, faces)[candidates, 2] > 0
    facing &= vertices[candidates, 2] >= min(landmarks[0, 2], landmarks[16, 2])
    xy, lm = vertices[candidates, :2], landmarks[:, :2]
    d = float(np.linalg.norm(lm[45] - lm[36]))
    up = np.array([0.0, 0.5 * d])
    outline = np.concatenate([lm[0:17], lm[26:16:-1] + up])
    inside = facing & points_in_polygon(xy, outline)
    band = np.array([0.0, 0.07 * d])
    excluded = [
        _scaled(lm[OUTER_LIPS_IBUG], 1.15, 1.15),
        *(_scaled(lm[list(eye)], 1.3, 2.0) for eye in EYES_IBUG),
        *(np.concatenate([lm[list(brow)] + band, lm[list(brow[::-1])] - band]) for brow in BROWS_IBUG),
    ]
    for polygon in excluded:
        inside &= ~points_in_polygon(xy, polygon)
    top = 0.5 * (lm[30, 1] + lm[33, 1])
    nostrils = (xy[:, 0] > lm[31, 0]) & (xy[:, 0] < lm[35, 0]) & (xy[:, 1] > lm[33, 1] - 0.02 * d) & (xy[:, 1] < top)
    return np.sort(candidates[inside & ~nostrils])
