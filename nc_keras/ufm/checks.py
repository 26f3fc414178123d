"""Argument checks shared by the UFM functions: each returns the clean value or
raises ValueError naming the argument.

Bad numbers must fail loudly here: a NaN weight decay or a fractional class
count would otherwise flow into eq. (3) and Theorem 3.1 and come out as a NaN
optimum, a silently truncated problem, or a solver that never stops.
"""

import math
import numbers

import keras
import numpy as np

__all__ = ["count", "optional_count", "nonnegative", "labels"]


def count(value, name, minimum=1):
    """`value` as an int, if it is a whole number >= `minimum`.

    Whole numbers written as floats (4.0, as from a config file or NumPy
    arithmetic) are accepted; fractions (2.7), NaN, infinities, booleans and
    strings raise ValueError.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value!r}")
    return int(value)


def optional_count(value, name, minimum=1):
    """`count`, with None passed through (None means "the default")."""
    return None if value is None else count(value, name, minimum)


def nonnegative(value, name):
    """`value` as a float, if it is a finite number >= 0; else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return float(value)


def labels(values, num_classes, num_samples=None):
    """`values` as a 1-D NumPy integer array with entries in [0, K).

    ValueError otherwise, and when `num_samples` is given and the length
    differs: out-of-range labels must not reach `keras.ops.one_hot`, which
    maps them to all-zero rows on some backends and wraps negative ones in
    NumPy indexing, either way a silently different objective.
    """
    array = np.asarray(keras.ops.convert_to_numpy(values))
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"labels must be a 1-D array of integers; got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got values from {array.min()} to {array.max()}"
        )
    if num_samples is not None and array.size != num_samples:
        raise ValueError(
            f"labels must have one entry per column of H ({num_samples}); got {array.size}"
        )
    return array
