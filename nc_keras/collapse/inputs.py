"""Checks and converts what the measurement accepts: tensors, labels, features.

Every array becomes a numpy array here, once, so the formulas and the
statistics see plain float64 features and int64 labels in [0, K).
"""

import numpy as np


def to_numpy(x, dtype=None):
    """`x` as a numpy array; numpy input is not copied (unless `dtype` asks)."""
    if not isinstance(x, np.ndarray):
        import keras

        x = keras.ops.convert_to_numpy(x)
    return np.asarray(x, dtype=dtype)


def as_labels(labels, num_classes):
    """Integer labels (N,) in [0, K); (N, 1) is squeezed, (N, K) one-hot argmaxed.

    Raises:
        ValueError: for labels that are not integers or lie outside [0, K).
    """
    y = to_numpy(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        y = np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(
            f"labels must have shape (N,), (N, 1) or one-hot (N, {num_classes}); "
            f"got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if y.dtype == bool or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"labels must be integers; got dtype {y.dtype}")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} label(s) outside [0, {num_classes}), e.g. "
            f"{sorted(set(y[bad][:5].tolist()))}; set num_classes or fix the labels"
        )
    return y


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


def finite_rows(features):
    """(N,) mask of the samples whose features are all finite."""
    return np.isfinite(features).all(axis=1)
