"""Checks and converts what the measurement accepts: tensors, labels, features.

Every array becomes a numpy array here, once, so the formulas and the
statistics see plain float64 features and int64 labels in [0, K).
"""

import numpy as np

from nc_keras import validation


def to_numpy(x, dtype=None):
    """`x` as a numpy array; numpy input is not copied (unless `dtype` asks)."""
    if not isinstance(x, np.ndarray):
        import keras

        x = keras.ops.convert_to_numpy(x)
    return np.asarray(x, dtype=dtype)


# One rule for class counts and labels everywhere (`nc_keras.validation`):
# K an integer >= 2 (3.0 taken as 3, 2.7 refused); labels (N,), (N, 1) or
# exact one-hot, in [0, K).
as_num_classes = validation.class_count
as_labels = validation.labels


def as_features(features, num_samples=None):
    """Float64 features (N, d), with as many rows as there are labels."""
    h = to_numpy(features, np.float64)
    if h.ndim != 2:
        raise ValueError(f"features must have shape (N, d); got {h.shape}")
    if num_samples is not None and h.shape[0] != num_samples:
        raise ValueError(
            f"features have {h.shape[0]} rows but labels have {num_samples}"
        )
    return h


def as_classifier(W, b, num_classes, dim=None):
    """(W, b) as float64 (K, d) and (K,) arrays; a missing bias is zero."""
    W = to_numpy(W, np.float64)
    if W.ndim != 2 or W.shape[0] != num_classes:
        raise ValueError(f"W must have shape ({num_classes}, d); got {W.shape}")
    if dim is not None and W.shape[1] != dim:
        raise ValueError(f"W has width {W.shape[1]} but the features have {dim}")
    b = np.zeros(num_classes) if b is None else to_numpy(b, np.float64).reshape(-1)
    if b.shape != (num_classes,):
        raise ValueError(f"b must have shape ({num_classes},); got {b.shape}")
    return W, b


def as_logits(logits, num_samples, num_classes):
    """Classifier outputs as an (N, K) array, one row per sample.

    Raises:
        ValueError: naming `logits` when the shape is not (N, K).
    """
    logits = to_numpy(logits)
    if logits.shape != (num_samples, num_classes):
        raise ValueError(
            f"logits must have shape ({num_samples}, {num_classes}) (one row of "
            f"K classifier outputs per sample); got {logits.shape}")
    return logits


def finite_rows(features):
    """(N,) mask of the samples whose features are all finite."""
    return np.isfinite(features).all(axis=1)
