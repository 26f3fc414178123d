"""One UFM instance as backend-compiled functions of a flat float64 vector.

The solvers and the Hessian analysis work on x = [vec(W), vec(H), b] (row-major
W (K, d), H (d, N)); `Problem` owns that layout and compiles, once per
instance, the objective of eq. (3), its gradient, the minibatch gradient step
and the Hessian-vector product on the active backend.
"""

import functools

import keras
import numpy as np

from nc_keras import backend, validation
from nc_keras.ufm import losses
from nc_keras.ufm.theory import class_labels, penalized_objective

__all__ = ["Problem", "cached_problem"]


class Problem:
    """Eq. (3) for one (K, d, labels, lambdas, loss) over x = [vec W, vec H, b].

    Args:
        num_classes, feature_dim: K and d.
        n_per_class: n, or K counts, for labels sorted by class
            (`class_labels`); None with `labels`.
        lambdas: (lambda_w, lambda_h, lambda_b).
        labels: (N,) integer labels in [0, K), the column order of H (default:
            sorted); ValueError for any outside that range.
        loss: a name in `nc_keras.ufm.losses.LOSSES` or a `losses.Loss`
            (default cross-entropy).
        weights: optional (N,) positive column weights: column i stands for
            weights[i] samples (`penalized_objective`; class-mean problems).
        fixed_classifier: optional (K, d) array: W is held at it and x is
            [vec H, b] only (a fixed simplex-ETF classifier, Sec. 4.3).

    Build it inside `nc_keras.backend.float64()`. Attributes: `value(x)` and
    `value_and_grad(x)`, compiled; `hvp()` and `minibatch_step(update)`,
    compiled on first use and kept.
    """

    def __init__(
        self, num_classes, feature_dim, n_per_class, lambdas, labels=None, loss="ce",
        weights=None, fixed_classifier=None,
    ):
        self.K, self.d = int(num_classes), int(feature_dim)
        self.lambdas = tuple(float(v) for v in lambdas)
        self.loss = losses.get(loss)
        if labels is None:
            self.labels = class_labels(self.K, n_per_class)
        else:
            self.labels = validation.labels(labels, self.K)
        self.N = len(self.labels)
        self.weights = None if weights is None else backend.to_tensor(weights)
        self.fixed_classifier = (
            None if fixed_classifier is None else backend.to_tensor(fixed_classifier)
        )
        kd = 0 if fixed_classifier is not None else self.K * self.d
        self.sizes = (kd, self.d * self.N, self.K)
        self.targets = backend.to_tensor(np.eye(self.K)[:, self.labels])
        self.value = backend.compile(self.objective)
        self.value_and_grad = backend.compile(backend.value_and_grad(self.objective))
        self._hvp = None
        self._steps = {}

    def split(self, x):
        """(W, H, b) as views of the flat tensor x."""
        kd, dn, _ = self.sizes
        if self.fixed_classifier is None:
            W = keras.ops.reshape(x[:kd], (self.K, self.d))
        else:
            W = self.fixed_classifier
        H = keras.ops.reshape(x[kd : kd + dn], (self.d, self.N))
        return W, H, x[kd + dn :]

    def flatten(self, W, H, b):
        """The flat float64 tensor of NumPy (W, H, b) (W left out when fixed)."""
        parts = [np.ravel(H), np.ravel(b)]
        if self.fixed_classifier is None:
            parts.insert(0, np.ravel(W))
        return backend.to_tensor(np.concatenate(parts).astype(np.float64))

    def unflatten_numpy(self, x):
        """NumPy (W, H, b) of the flat tensor x."""
        W, H, b = self.split(backend.to_numpy(x))
        return np.asarray(W), np.asarray(H), np.asarray(b)

    def objective(self, x, columns=None):
        """f(x) of eq. (3); with `columns`, the loss averages that minibatch only."""
        W, H, b = self.split(x)
        return penalized_objective(
            W, H, b, self.targets, *self.lambdas, columns=columns, loss=self.loss,
            weights=self.weights,
        )

    def hvp(self):
        """The compiled Hessian-vector product (x, v) -> (d^2 f / dx^2)(x) v."""
        if self._hvp is None:
            self._hvp = backend.compile(backend.hessian_vector_product(self.objective))
        return self._hvp

    def minibatch_step(self, update):
        """Compiled (x, columns, *args) -> update(x, g, *args), g the gradient
        of the minibatch objective `objective(x, columns)`; one per `update`."""
        if update not in self._steps:

            def step(x, columns, *args):
                _, grad = backend.value_and_grad(self.objective)(x, columns)
                return update(x, grad, *args)

            self._steps[update] = backend.compile(step)
        return self._steps[update]


def cached_problem(num_classes, feature_dim, n_per_class, lambdas, loss="ce"):
    """The `Problem` for labels sorted by class, built once per backend and
    arguments (`n_per_class`: n or K counts; `loss`: a name or `losses.Loss`).

    Its compiled functions live as long as the cache entry, so repeated solves
    of one configuration (CLI runs in a session, landscapes, tests) trace once.
    """
    counts = tuple(int(v) for v in np.atleast_1d(n_per_class))
    return _cached(
        backend.name(), int(num_classes), int(feature_dim), counts, tuple(lambdas),
        losses.get(loss),
    )


@functools.lru_cache(maxsize=8)
def _cached(backend_name, num_classes, feature_dim, counts, lambdas, loss):
    # Keyed by backend too: a process may switch backends (tests do).
    n_per_class = counts[0] if len(counts) == 1 else counts
    return Problem(num_classes, feature_dim, n_per_class, lambdas, loss=loss)
