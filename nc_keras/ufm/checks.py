"""Deprecated: the argument checks moved to `nc_keras.validation`."""

import warnings

from nc_keras.validation import count, labels, nonnegative, optional_count

__all__ = ["count", "optional_count", "nonnegative", "labels"]

warnings.warn(
    "nc_keras.ufm.checks is deprecated and will be removed in the next release; "
    "use nc_keras.validation",
    DeprecationWarning,
    stacklevel=2,
)
