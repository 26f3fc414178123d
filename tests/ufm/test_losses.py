"""The loss registry of eq. (3): CE, MSE, label smoothing and focal loss."""

import keras
import numpy as np
import pytest

from nc_keras import backend
from nc_keras.ufm import losses

LOGITS = np.array([[1.0, -2.0, 0.3], [0.5, 0.0, 8.0], [-1.0, 3.0, -0.7]])
LABELS = [0, 2, 1]


def _per_column(loss, **options):
    with backend.float64():
        values = losses.get(loss, **options)(
            backend.to_tensor(LOGITS), backend.to_tensor(np.eye(3)[:, LABELS])
        )
        assert keras.backend.standardize_dtype(values.dtype) == "float64"
        return backend.to_numpy(values)


def _reference(loss, smoothing=0.0, gamma=0.0):
    """Textbook formulas in NumPy, column by column."""
    values = []
    for z, y in zip(LOGITS.T, LABELS):
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        if loss == "mse":
            values.append(0.5 * np.sum((z - np.eye(3)[y]) ** 2))
        elif loss == "label_smoothing":
            q = (1 - smoothing) * np.eye(3)[y] + smoothing / 3
            values.append(-np.sum(q * np.log(p)))
        else:
            values.append(-((1 - p[y]) ** gamma) * np.log(p[y]))
    return np.array(values)


@pytest.mark.parametrize(
    "loss, options",
    [
        ("ce", {}),
        ("mse", {}),
        ("label_smoothing", {"smoothing": 0.2}),
        ("focal", {"gamma": 2.0}),
        ("focal", {"gamma": 0.5}),
    ],
)
def test_each_loss_matches_its_formula(loss, options):
    assert np.allclose(_per_column(loss, **options), _reference(loss, **options), rtol=1e-13)


def test_registry_and_special_cases():
    assert set(losses.LOSSES) == {"ce", "mse", "label_smoothing", "focal"}
    ce = _per_column("ce")
    assert np.allclose(_per_column("focal", gamma=0.0), ce, rtol=1e-15)
    assert np.allclose(_per_column("label_smoothing", smoothing=0.0), ce, rtol=1e-15)
    assert losses.get("focal") == losses.Loss("focal", gamma=2.0)  # hashable, comparable
    assert losses.get("label_smoothing").smoothing == 0.1
    assert not losses.get("mse").shift_invariant and losses.get("focal").shift_invariant


def test_bad_losses_and_parameters_are_value_errors():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match="smoothing applies"):
        losses.get("focal", smoothing=0.1)
    with pytest.raises(ValueError, match="gamma applies"):
        losses.get("ce", gamma=2.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        losses.get("label_smoothing", smoothing=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        losses.get("focal", gamma=-1.0)
    assert losses.get(losses.cross_entropy) is losses.cross_entropy
