"""The loss registry of eq. (3): cross-entropy is the one entry today."""

import math

import numpy as np
import pytest

from nc_keras import backend
from nc_keras.ufm import losses


def test_cross_entropy_per_column_matches_numpy():
    logits = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]])
    targets = np.eye(3)[:, [0, 2]]
    with backend.float64():
        values = backend.to_numpy(
            losses.get("cross_entropy")(backend.to_tensor(logits), backend.to_tensor(targets))
        )
    expected = [
        math.log(np.exp(logits[:, j]).sum()) - logits[label, j] for j, label in enumerate([0, 2])
    ]
    assert np.allclose(values, expected, rtol=1e-14)
    assert set(losses.LOSSES) == {"cross_entropy"}


def test_unknown_loss_is_a_value_error():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    assert losses.get(losses.cross_entropy) is losses.cross_entropy
