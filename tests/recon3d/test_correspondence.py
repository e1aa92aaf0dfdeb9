"""`tracker_correspondence`: the model vertices at the places of a reference mesh's vertices."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recon3d.facemodels import load_face_model
from recon3d.facemodels.correspondence import inner_lip_silhouette, tracker_correspondence


@pytest.fixture(scope="module")
def builtin():
    return load_face_model("builtin")


def _reference(model, indices: np.ndarray, scale: float, angles_deg, offset) -> tuple[np.ndarray, np.ndarray]:
    """The model's own vertices at `indices`, moved by a similarity transform, and where the
    model's landmarks sit among them."""
    rotation = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()
    reference = scale * model.mean_shape.numpy()[indices] @ rotation.T + np.asarray(offset)
    landmark_idx = model.landmark_idx.numpy()
    position = {vertex: i for i, vertex in enumerate(indices)}
    return reference, np.array([position[v] for v in landmark_idx])


@pytest.mark.parametrize("scale, angles, offset", [(1.0, (0, 0, 0), (0, 0, 0)), (37.0, (10, -25, 5), (120, -40, 8))])
def test_recovers_the_vertices_a_reference_was_made_of(builtin, scale, angles, offset):
    rng = np.random.default_rng(0)
    landmark_idx = builtin.landmark_idx.numpy()
    others = rng.choice(np.setdiff1d(np.arange(builtin.num_vertices), landmark_idx), 150, replace=False)
    indices = rng.permutation(np.concatenate([landmark_idx, others]))  # any order, in pixels-like units
    reference, reference_landmarks = _reference(builtin, indices, scale, angles, offset)
    match = tracker_correspondence(
        builtin.mean_shape.numpy(),
        builtin.id_basis.numpy(),
        np.arange(builtin.num_vertices),
        landmark_idx,
        reference,
        reference_landmarks,
    )
    np.testing.assert_array_equal(match, indices)


def test_matches_stay_among_the_candidates(builtin):
    """Vertices outside `candidates` are never returned, even where the reference point is one."""
    landmark_idx = builtin.landmark_idx.numpy()
    indices = np.arange(builtin.num_vertices)
    reference, reference_landmarks = _reference(builtin, indices, 10.0, (0, 15, 0), (1, 2, 3))
    candidates = np.setdiff1d(indices, indices[::2])  # odd vertices only
    match = tracker_correspondence(
        builtin.mean_shape.numpy(), builtin.id_basis.numpy(), candidates, landmark_idx, reference, reference_landmarks
    )
    assert np.isin(match, candidates).all()


def test_inner_lip_landmarks_move_to_the_edge_of_the_opening_seen_from_the_front():
    """Each lip rolls inward past its landmark: the vertex of that lip nearest the other one, in
    the landmark's column, is the edge a tracker sees; a landmark with no such vertex stays."""
    landmark_idx = np.arange(68)
    shape = np.full((68, 3), 10.0)  # the rest of the face far from the mouth
    shape[60:68] = [
        [-2, 0, 0],
        [-1, 0.5, 0],
        [0, 0.5, 0],
        [1, 0.5, 0],
        [2, 0, 0],
        [1, -0.5, 0],
        [0, -0.5, 0],
        [-1, -0.5, 0],
    ]
    rolled = np.array(
        [[0, 0.3, -0.05], [0, -0.35, -0.05], [0, 0.2, -5.0], [0.5, 0.1, 0.0]]
    )  # last two: too deep, other column
    shape = np.concatenate([shape, rolled])
    out = inner_lip_silhouette(shape, landmark_idx, np.arange(len(shape)), column=0.2, depth=0.2, reach=1.0)
    assert out[62] == 68 and out[66] == 69  # the middle of the upper and lower lip
    assert (out[[61, 63, 65, 67]] == [61, 63, 65, 67]).all() and (out[:60] == landmark_idx[:60]).all()
