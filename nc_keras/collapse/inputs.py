"""Checks and converts what the measurement accepts: tensors, labels, features.

Every array becomes a numpy array here, once, so the formulas and the
statistics see plain float64 features and int64 labels in [0, K).
"""

import operator

import numpy as np


def to_numpy(x, dtype=None):
    """`x` as a numpy array; numpy input is not copied (unless `dtype` asks)."""
    if not isinstance(x, np.ndarray):
        import keras

        x = keras.ops.convert_to_numpy(x)
    return np.asarray(x, dtype=dtype)


def as_num_classes(num_classes):
    """K as an int >= 2; a float (2.7, or even 3.0) is refused, not truncated."""
    try:
        k = operator.index(num_classes)
    except TypeError:
        raise TypeError(
            f"num_classes must be an integer; got {num_classes!r}") from None
    if k < 2:
        raise ValueError(f"num_classes must be at least 2; got {k}")
    return k


def as_labels(labels, num_classes):
    """Integer labels (N,) in [0, K); (N, 1) is squeezed, exact one-hot (N, K) decoded.

    A (N, K) array is accepted only when every row is exactly one 1 and
    K-1 zeros: logits or probabilities passed by mistake would otherwise be
    argmaxed into labels the model itself chose.

    Raises:
        ValueError: for labels that are not whole numbers (integers, or
            floats such as 2.0; or one-hot rows) or lie outside [0, K).
    """
    y = to_numpy(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == num_classes:
        one_hot = np.all((y == 0) | (y == 1), axis=1) & (np.sum(y == 1, axis=1) == 1)
        if not one_hot.all():
            raise ValueError(
                f"labels of shape {y.shape} must be exact one-hot rows (one 1, "
                f"the rest 0); {int((~one_hot).sum())} row(s) are not (logits or "
                "probabilities passed as labels?)")
        y = np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(
            f"labels must have shape (N,), (N, 1) or one-hot (N, {num_classes}); "
            f"got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if y.dtype == bool:
            raise ValueError("labels must be whole numbers (integers, or floats such as 2.0); "
                             "got dtype bool")
        other = ~np.isfinite(y) | (y != np.round(np.nan_to_num(y)))
        if other.any():
            raise ValueError(
                f"labels must be whole numbers (integers, or floats such as 2.0); got dtype "
                f"{y.dtype} with {int(other.sum())} other value(s), e.g. {y[other][:3].tolist()}")
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
