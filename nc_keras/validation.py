"""The rules for the numbers and labels every public function takes.

One rule, one place: the measurement (`nc_keras.collapse`), the UFM
(`nc_keras.ufm`), the layers and models and the command line all check
class counts, sizes, positive numbers and labels here, so that one value
gets one answer everywhere. Each check returns the clean value or raises a
`ValueError` that names the argument (the command line prints it as its one
error line).

Bad numbers must fail loudly: a fractional class count or a NaN weight
decay would otherwise flow into the formulas and come out as a silently
truncated problem or a NaN result.
"""

import math
import numbers

import numpy as np

__all__ = [
    "class_count",
    "count",
    "labels",
    "nonnegative",
    "optional_count",
    "positive",
]


def count(value, name, minimum=1):
    """`value` as an int, if it is a whole number >= `minimum`.

    Whole numbers written as floats (4.0, as from a config file or NumPy
    arithmetic) are accepted and returned as ints (what `keras.layers.Dense`
    needs); fractions (2.7), NaN, infinities, booleans and strings raise
    ValueError, never a truncation.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def optional_count(value, name, minimum=1):
    """`count`, with None passed through (None means "the default")."""
    return None if value is None else count(value, name, minimum)


def class_count(value, name="num_classes"):
    """K as an int: an integer >= 2 (3.0 is taken as 3; 2.7, 1, "3" are refused).

    Neural collapse compares K >= 2 class means: with one class there is no
    simplex, and every metric would be 0/0.
    """
    return count(value, name, minimum=2)


def nonnegative(value, name):
    """`value` as a float, if it is a finite number >= 0; else ValueError."""
    value = _real(value, name)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return value


def positive(value, name):
    """`value` as a float, if it is a finite number > 0; else ValueError."""
    value = _real(value, name)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0; got {value!r}")
    return value


def _real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number; got {value!r}")
    return float(value)


def labels(values, num_classes, num_samples=None):
    """Integer labels as an int64 (N,) array with entries in [0, K).

    Accepted: integers (N,), (N, 1) (squeezed), whole numbers stored as
    floats, and exact one-hot rows (N, K) (decoded). A (N, K) array is
    decoded only when every row is exactly one 1 and K-1 zeros: logits or
    probabilities passed by mistake would otherwise be argmaxed into labels
    the model itself chose. Out-of-range labels are refused: they must not
    reach `keras.ops.one_hot` (all-zero rows on some backends) or NumPy
    indexing (negative ones wrap), either way a silently different result.

    Args:
        values: the labels, numpy or any backend tensor.
        num_classes: K.
        num_samples: when given, the number of labels there must be.
    Raises:
        ValueError: naming what is wrong (shape, dtype, range or length).
    """
    y = np.asarray(values) if isinstance(values, (np.ndarray, list, tuple)) else _to_numpy(values)
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
            f"got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        rule = "labels must be whole numbers (integers, or floats such as 2.0)"
        if not np.issubdtype(y.dtype, np.number) or y.dtype == bool:
            raise ValueError(f"{rule}; got dtype {y.dtype}")
        other = ~np.isfinite(y) | (y != np.round(np.nan_to_num(y)))
        if other.any():
            raise ValueError(f"{rule}; got dtype {y.dtype} with {int(other.sum())} other "
                             f"value(s), e.g. {y[other][:3].tolist()}")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} label(s) outside [0, {num_classes}), e.g. "
            f"{sorted(set(y[bad][:5].tolist()))}; set num_classes or fix the labels")
    if num_samples is not None and y.size != num_samples:
        raise ValueError(
            f"labels must have one entry per sample ({num_samples}); got {y.size}")
    return y


def _to_numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))
