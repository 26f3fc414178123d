"""One UFM instance as backend-compiled functions of a flat float64 vector.

The solvers and the Hessian analysis work on x = [vec(W), vec(H), b] (row-major
W (K, d), H (d, N)); `Problem` owns that layout and compiles, once per
instance, the objective of eq. (3), its gradient, the minibatch gradient step
and the Hessian-vector product on the active backend.
"""

import functools

import keras
import numpy as np

from nc_keras import backend
from nc_keras.ufm import checks
from nc_keras.ufm.theory import class_labels, penalized_objective

__all__ = ["Problem", "cached_problem"]


class Problem:
    """Eq. (3) for one (K, d, labels, lambdas, loss) over x = [vec W, vec H, b].

    Args:
        num_classes, feature_dim: K and d.
        n_per_class: n for balanced labels (`class_labels`); None with `labels`.
        lambdas: (lambda_w, lambda_h, lambda_b).
        labels: (N,) integer labels in [0, K), the column order of H (default:
            balanced); ValueError for any outside that range.
        loss: a name in `nc_keras.ufm.losses.LOSSES` (default cross-entropy).

    Build it inside `nc_keras.backend.float64()`. Attributes: `value(x)` and
    `value_and_grad(x)`, compiled; `hvp()` and `minibatch_step(update)`,
    compiled on first use and kept.
    """

    def __init__(
        self, num_classes, feature_dim, n_per_class, lambdas, labels=None, loss="cross_entropy"
    ):
        self.K, self.d = int(num_classes), int(feature_dim)
        self.n = None if n_per_class is None else int(n_per_class)
        self.lambdas = tuple(float(v) for v in lambdas)
        self.loss = loss
        if labels is None:
            self.labels = class_labels(self.K, self.n)
        else:
            self.labels = checks.labels(labels, self.K)
        self.N = len(self.labels)
        self.sizes = (self.K * self.d, self.d * self.N, self.K)
        self.targets = backend.to_tensor(np.eye(self.K)[:, self.labels])
        self.value = backend.compile(self.objective)
        self.value_and_grad = backend.compile(backend.value_and_grad(self.objective))
        self._hvp = None
        self._steps = {}

    def split(self, x):
        """(W, H, b) as views of the flat tensor x."""
        kd, dn, _ = self.sizes
        W = keras.ops.reshape(x[:kd], (self.K, self.d))
        H = keras.ops.reshape(x[kd : kd + dn], (self.d, self.N))
        return W, H, x[kd + dn :]

    def flatten(self, W, H, b):
        """The flat float64 tensor of NumPy (W, H, b)."""
        return backend.to_tensor(
            np.concatenate([np.ravel(W), np.ravel(H), np.ravel(b)]).astype(np.float64)
        )

    def unflatten_numpy(self, x):
        """NumPy (W, H, b) of the flat tensor x."""
        W, H, b = self.split(backend.to_numpy(x))
        return np.asarray(W), np.asarray(H), np.asarray(b)

    def objective(self, x, columns=None):
        """f(x) of eq. (3); with `columns`, the loss averages that minibatch only."""
        W, H, b = self.split(x)
        return penalized_objective(
            W, H, b, self.targets, *self.lambdas, columns=columns, loss=self.loss
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


def cached_problem(num_classes, feature_dim, n_per_class, lambdas):
    """The `Problem` for balanced classes, built once per backend and arguments.

    Its compiled functions live as long as the cache entry, so repeated solves
    of one configuration (CLI runs in a session, landscapes, tests) trace once.
    """
    return _cached(
        backend.name(), int(num_classes), int(feature_dim), int(n_per_class), tuple(lambdas)
    )


@functools.lru_cache(maxsize=8)
def _cached(backend_name, num_classes, feature_dim, n_per_class, lambdas):
    # Keyed by backend too: a process may switch backends (tests do).
    return Problem(num_classes, feature_dim, n_per_class, lambdas)
