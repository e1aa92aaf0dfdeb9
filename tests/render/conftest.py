"""Face-model helpers shared by render's tests."""

import dataclasses

import numpy as np
import pytest
import torch

from recon3d.facemodels import load_face_model


@pytest.fixture(scope="module")
def builtin():
    return load_face_model("builtin")


def neutral(model, count: int = 1, **changes):
    coeffs = model.layout.zeros(count)
    return dataclasses.replace(
        coeffs, **{k: torch.as_tensor(v, dtype=torch.float32).expand(count, -1).clone() for k, v in changes.items()}
    )


def opening_exp(model) -> torch.Tensor:
    """An expression that opens the mouth: the expression mode that parts the inner lips most (the
    upper one up, the lower down; a mode that pushes them through each other does not count), at
    3 std."""

    def parting(coeffs) -> np.ndarray:
        lips = model.landmarks(model.shape(coeffs.id, coeffs.exp))
        return (lips[:, [61, 62, 63], 1] - lips[:, [67, 66, 65], 1]).mean(1).numpy()

    shapes = parting(neutral(model, model.layout.exp_dim, exp=torch.eye(model.layout.exp_dim)))
    base = parting(neutral(model))[0]
    mode = int(np.argmax(np.abs(shapes - base)))
    sign = 1.0 if shapes[mode] > base else -1.0
    exp = torch.zeros(model.layout.exp_dim)
    exp[mode] = 3.0 * sign * model.exp_prior_std
    return exp
