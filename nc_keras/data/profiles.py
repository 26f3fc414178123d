"""How many training examples of each class a subset keeps: balanced or imbalanced.

`load(samples_per_class=..., imbalance_ratio=...)` keeps the first n_k
examples of class k (in the split's stored order); this module says what the
n_k are:

- `samples_per_class=n`: n for every class (balanced);
- `samples_per_class=[n_0, ..., n_{K-1}]`: those counts (any imbalance);
- `imbalance_ratio=R`: the exponential, long-tailed profile of the
  long-tailed CIFAR benchmarks (Cui et al., CVPR 2019, "Class-balanced loss
  based on effective number of samples"; Cao et al., NeurIPS 2019),

      n_k = floor(n_max * (1/R)^(k / (K-1))),   k = 0, ..., K-1,

  from n_max for the first class down to n_max / R for the last, where
  n_max is `samples_per_class` (an int) or, without it, the size of the
  split's smallest class. CIFAR-10 with R = 100 gives 5000, 2997, 1796,
  1077, 645, 387, 232, 139, 83, 50, the counts of those benchmarks.
"""

import math

import numpy as np

__all__ = ["check_class_profile", "class_counts", "long_tailed_counts", "parse_samples_per_class"]


def long_tailed_counts(n_max, num_classes, ratio):
    """[floor(n_max (1/R)^(k/(K-1))) for k = 0..K-1], the long-tailed profile.

    Computed as the reference code of Cui et al. (2019) does, with the
    factor 1/R raised to k/(K-1), so that the counts are exactly theirs.
    """
    check_class_profile(n_max, ratio)
    if num_classes < 2:
        return [int(n_max)] * num_classes
    factor = 1.0 / ratio
    return [int(math.floor(n_max * factor ** (k / (num_classes - 1.0)))) for k in range(num_classes)]


def class_counts(labels, num_classes, samples_per_class=None, imbalance_ratio=None, what="dataset"):
    """The n_k to keep of each class (a list of K ints), or None for every example.

    `ValueError` when a list does not have K entries, or when a long-tailed
    profile would keep no example of a class (`first_per_class` checks that
    every class has its n_k).
    """
    check_class_profile(samples_per_class, imbalance_ratio)
    if samples_per_class is None and imbalance_ratio is None:
        return None
    if imbalance_ratio is not None:
        if samples_per_class is None:
            sizes = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
            n_max = int(sizes[:num_classes].min())
        else:
            n_max = int(samples_per_class)
        counts = long_tailed_counts(n_max, num_classes, imbalance_ratio)
        if min(counts) < 1:
            raise ValueError(
                f"{what}: imbalance_ratio={imbalance_ratio} keeps no example of class "
                f"{counts.index(0)} with n_max={n_max}; lower the ratio or raise samples_per_class"
            )
    elif isinstance(samples_per_class, (list, tuple)):
        if len(samples_per_class) != num_classes:
            raise ValueError(
                f"{what}: samples_per_class has {len(samples_per_class)} counts for "
                f"{num_classes} classes"
            )
        counts = [int(n) for n in samples_per_class]
    else:
        counts = [int(samples_per_class)] * num_classes
    return counts


def check_class_profile(samples_per_class, imbalance_ratio):
    """`ValueError` unless the counts are positive integers and R >= 1, one list at most."""
    counts = samples_per_class
    if counts is not None:
        values = counts if isinstance(counts, (list, tuple)) else [counts]
        if not values or any(isinstance(n, bool) or int(n) != n or n < 1 for n in values):
            raise ValueError(
                f"samples_per_class must be a positive integer or a list of them, got {counts!r}"
            )
    if imbalance_ratio is not None:
        if not imbalance_ratio >= 1:
            raise ValueError(f"imbalance_ratio must be >= 1, got {imbalance_ratio!r}")
        if isinstance(counts, (list, tuple)):
            raise ValueError("imbalance_ratio takes an integer samples_per_class (n_max), not a list")


def parse_samples_per_class(text):
    """"100" -> 100; "500,250,100" -> [500, 250, 100] (the command line's form)."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"samples_per_class: expected an integer or a comma-separated list, got {text!r}") from None
    return values[0] if len(values) == 1 and "," not in str(text) else values
