r"""The per-sample losses the UFM objective (eq. (3)) can average.

A loss is a function `loss(logits, targets) -> (N,)` on column-major blocks:
logits Z = W H + b 1^T and one-hot targets Y, both (K, N), one column per
sample. `LOSSES` maps each name to its function, so a new loss is one
function and one entry here; `nc_keras.ufm.theory.penalized_objective` adds the
weight decay of eq. (3) to whichever loss it is given, and
`nc_keras.ufm.optima` holds each loss's exact global minimum.

* "ce": cross-entropy, log sum_j e^{z_j} - z_y (Zhu et al. 2021, eq. (3)).
* "mse": (1/2) ||z - e_y||^2, so that the loss term of eq. (3) is
  (1/2N) ||W H + b 1^T - Y||_F^2, the objective of Zhou et al. (ICML 2022);
  its logit gradient z - e_y mirrors cross-entropy's softmax(z) - e_y. Any
  other scale c of the squared error is the same problem with every lambda
  divided by 2c.
* "label_smoothing": cross-entropy against q = (1 - a) e_y + (a/K) 1
  (Szegedy et al. 2016), i.e. logsumexp(z) - <q, z>, a = `smoothing` in
  [0, 1) (no target-entropy term: the loss does not vanish at its infimum).
* "focal": -(1 - p_y)^gamma log p_y, p = softmax(z) (Lin et al. 2017),
  `gamma` >= 0; gamma = 0 is cross-entropy.

`get(name, smoothing=, gamma=)` returns a `Loss`: the function with its
parameter bound, hashable (compiled problems are cached per loss).

Each is the formula of `nc_keras.losses` (shared with training) on columns;
they compute with `keras.ops.sum`/`logsumexp`/`expm1`, which keep float64 on
every backend (`ops.matmul` on torch and `ops.mean` on JAX drop to float32
under Keras's type promotion).
"""

import dataclasses

from nc_keras import losses as shared

__all__ = [
    "LOSSES",
    "Loss",
    "cross_entropy",
    "mean_squared_error",
    "label_smoothing",
    "focal",
    "get",
]

# Lin et al.'s focal exponent and a common smoothing: the values used when a
# loss that needs one is named without it.
DEFAULT_GAMMA = 2.0
DEFAULT_SMOOTHING = 0.1


# The formulas of `nc_keras.losses` (shared with training), one sample per column.


def cross_entropy(logits, targets):
    """CE(z, y) = log sum_j exp(z_j) - <y, z> per column: the loss of eq. (3)."""
    return shared.cross_entropy(targets, logits, axis=0)


def mean_squared_error(logits, targets):
    """(1/2) ||z - y||^2 per column (the 1/2 makes the logit gradient z - y)."""
    return shared.half_squared_error(targets, logits, axis=0)


def label_smoothing(logits, targets, smoothing=DEFAULT_SMOOTHING):
    """Cross-entropy against (1 - a) y + a/K 1 per column: logsumexp(z) - <q, z>."""
    return shared.smoothed_cross_entropy(targets, logits, smoothing, axis=0)


def focal(logits, targets, gamma=DEFAULT_GAMMA):
    """(1 - p_y)^gamma (-log p_y) per column (`nc_keras.losses.focal_cross_entropy`)."""
    return shared.focal_cross_entropy(targets, logits, gamma, axis=0)


LOSSES = {
    "ce": cross_entropy,
    "mse": mean_squared_error,
    "label_smoothing": label_smoothing,
    "focal": focal,
}


@dataclasses.dataclass(frozen=True)
class Loss:
    """One loss of `LOSSES` with its parameter: callable (logits, targets) -> (N,).

    `smoothing` is set for "label_smoothing" only, `gamma` for "focal" only
    (None otherwise), so equal losses compare (and hash) equal.
    """

    name: str
    smoothing: float = None
    gamma: float = None

    def __call__(self, logits, targets):
        options = {}
        if self.smoothing is not None:
            options["smoothing"] = self.smoothing
        if self.gamma is not None:
            options["gamma"] = self.gamma
        return LOSSES[self.name](logits, targets, **options)

    @property
    def shift_invariant(self):
        """Whether L(z + c 1) = L(z) (every loss here but MSE)."""
        return self.name != "mse"


def get(loss="ce", smoothing=None, gamma=None):
    """The `Loss` for a name in `LOSSES` (a `Loss` or other callable is returned
    as is). `smoothing` (label smoothing, in [0, 1), default 0.1) and `gamma`
    (focal, >= 0, default 2) are rejected for the losses that have no such
    parameter, so that a misspelt loss name cannot silently ignore them."""
    if callable(loss):
        if smoothing is not None or gamma is not None:
            raise ValueError("smoothing/gamma go with a loss name, not a loss object")
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if smoothing is not None and loss != "label_smoothing":
        raise ValueError(f"smoothing applies to loss='label_smoothing' only, not {loss!r}")
    if gamma is not None and loss != "focal":
        raise ValueError(f"gamma applies to loss='focal' only, not {loss!r}")
    if loss == "label_smoothing":
        smoothing = DEFAULT_SMOOTHING if smoothing is None else float(smoothing)
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    if loss == "focal":
        gamma = DEFAULT_GAMMA if gamma is None else float(gamma)
        if not gamma >= 0.0:
            raise ValueError(f"gamma must be >= 0; got {gamma}")
    return Loss(loss, smoothing, gamma)
