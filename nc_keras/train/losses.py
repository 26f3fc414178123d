"""The training loss of a `TrainConfig`: cross-entropy, MSE, label smoothing or focal.

`build_loss(config)` gives the Keras loss of `TrainConfig.loss`;
`model.compile` (SGD, Adam) and the L-BFGS objective (`fit_lbfgs`) both use
it, so every optimizer minimizes the same function. The formulas, shared
with the unconstrained feature model, are those of `nc_keras.losses`.
"""

import keras

# The Keras losses, defined with their formulas; also importable from here.
from nc_keras.losses import (  # noqa: F401
    SparseFocalCrossentropy,
    SparseHalfSquaredError,
    SparseSmoothedCrossentropy,
)

LOSSES = ("ce", "mse", "label_smoothing", "focal")

__all__ = [
    "LOSSES",
    "SparseFocalCrossentropy",
    "SparseHalfSquaredError",
    "SparseSmoothedCrossentropy",
    "build_loss",
    "check_loss",
    "make_loss",
]


def check_loss(loss, label_smoothing=0.1, focal_gamma=2.0):
    """`ValueError` for an unknown loss or a parameter out of its range."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
    if not focal_gamma >= 0.0:
        raise ValueError(f"focal_gamma must be >= 0; got {focal_gamma}.")


def make_loss(loss="ce", label_smoothing=0.1, focal_gamma=2.0):
    """The Keras loss `loss` (one of `LOSSES`) on integer labels and logits.

    `label_smoothing` (alpha) is used by "label_smoothing" only, and
    `focal_gamma` (gamma) by "focal" only.
    """
    check_loss(loss, label_smoothing, focal_gamma)
    if loss == "ce":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loss == "mse":
        return SparseHalfSquaredError()
    if loss == "label_smoothing":
        return SparseSmoothedCrossentropy(label_smoothing)
    return SparseFocalCrossentropy(focal_gamma)


def build_loss(config):
    """The loss of a `TrainConfig`: `make_loss(config.loss, ...)`."""
    return make_loss(config.loss, config.label_smoothing, config.focal_gamma)
