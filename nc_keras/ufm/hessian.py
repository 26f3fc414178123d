"""The smallest Hessian eigenvalues of eq. (3): strict saddles (Theorem 3.2)
and the rotation zero modes at a global minimizer."""

import dataclasses

import numpy as np

from nc_keras import backend
from nc_keras.ufm import losses
from nc_keras.ufm.problem import Problem
from nc_keras.ufm.theory import DEFAULT_LAMBDA

__all__ = ["HessianEigen", "dense_hessian", "hessian_min_eigenvalue", "rotation_zero_modes"]


@dataclasses.dataclass
class HessianEigen:
    """Smallest Hessian eigenvalues (ascending) and their unit eigenvectors.

    eigenvectors[:, j] is flat over [vec(W), vec(H), b]; `split(j)` returns
    it as (dW, dH, db) shaped like (W, H, b).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    shapes: tuple

    def split(self, j=0):
        vector = self.eigenvectors[:, j]
        parts, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            parts.append(vector[offset : offset + size].reshape(shape))
            offset += size
        return tuple(parts)


def hessian_min_eigenvalue(
    W, H, b, labels, lambda_w, lambda_h, lambda_b, k=1, tolerance=1e-10, seed=0, dense_up_to=500,
    loss="ce", smoothing=None, gamma=None,
):
    """The k smallest eigenvalues of the Hessian of f (eq. (3)) at (W, H, b).

    Matrix-free: Hessian-vector products by autodiff on the active backend
    (`nc_keras.backend.hessian_vector_product`: forward-over-reverse on JAX,
    double backward on TensorFlow and torch) inside a SciPy LinearOperator,
    and Lanczos (`scipy.sparse.linalg.eigsh` on the shifted sigma I - H, whose
    largest eigenvalues are H's smallest; see `_smallest_eigenpairs`). Memory is a few
    vectors of size Kd + dN + K, so it runs where the dense Hessian (the
    square of that) would not fit.

    Theorem 3.2 (d > K, balanced classes): every critical point that is not a
    global minimizer has a negative eigenvalue. At (0, 0, 0) the gradient is
    zero (balanced classes: the mean of softmax(0) - y_k over the samples
    vanishes) and the W-H block of the Hessian is [[lW I, G], [G^T, lH I]] with
    G the loss gradient w.r.t. the logits, so the smallest eigenvalue is about
    -(1/(K sqrt(n)) - sqrt(lW lH)) < 0 for small penalties: following its
    eigenvector lowers f.

    At a global minimizer the Hessian is positive semi-definite with exact
    zero modes from the symmetry f(W Q^T, Q H, b) = f(W, H, b) for every
    orthogonal Q in O(d): the orbit through (W*, H*) is a manifold of
    minimizers of dimension dim O(d) - dim(stabilizer). Rotations that fix
    every row of W* and column of H* are those acting only on the (d - K + 1)
    dimensional complement of their (K - 1)-dimensional span, so there are
    `rotation_zero_modes(K, d)` = d(d-1)/2 - (d-K+1)(d-K)/2 zero eigenvalues
    (one more when lambda_b = 0: adding a constant to b changes nothing).
    The same holds for the other losses at their minimizers, with the rank r
    of W* (K - 1, or K in MSE's rank-K regime) for K - 1, and no bias mode
    for MSE (not shift invariant): `rotation_zero_modes(K, d, lb, rank, loss)`.
    Lanczos then reports the smallest eigenvalue as 0 up to round-off.

    Lanczos from one start vector sees each eigenspace through a single
    direction, so with k > 1 it may list a repeated eigenvalue fewer times
    than its multiplicity; the smallest eigenvalue itself is reliable. When
    there are at most `dense_up_to` variables the exact dense Hessian is used
    instead (Kd + dN + K products), which counts multiplicities exactly.

    Args:
        W (K, d), H (d, N), b (K,), labels (N,): the point (NumPy arrays).
        k: how many of the smallest eigenvalues to return.
        tolerance: Lanczos accuracy, relative to the largest eigenvalue.
        dense_up_to: largest number of variables handled densely.
        loss, smoothing, gamma: the loss of eq. (3) (`nc_keras.ufm.losses.get`).
    Returns:
        `HessianEigen`.
    """
    from scipy.sparse.linalg import LinearOperator

    W, H, b = (np.asarray(a, dtype=np.float64) for a in (W, H, b))
    lambdas = (lambda_w, lambda_h, lambda_b)
    with backend.float64():
        problem = Problem(
            W.shape[0], W.shape[1], None, lambdas, labels=labels,
            loss=losses.get(loss, smoothing, gamma),
        )
        x = problem.flatten(W, H, b)
        matvec = _matvec(problem, x)
        size = int(sum(problem.sizes))
        operator = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
        start = np.random.default_rng(seed).standard_normal(size)
        if size <= dense_up_to or k >= size - 1:
            # Single-vector Lanczos finds one vector per eigenspace (repeated
            # eigenvalues, like the rotation zero modes, show up once or a few
            # times); small problems get the exact spectrum from the dense
            # Hessian, assembled column by column from the same products.
            values, vectors = np.linalg.eigh(dense_hessian(problem, x))
            values, vectors = values[:k], vectors[:, :k]
        else:
            values, vectors = _smallest_eigenpairs(operator, size, k, tolerance, start)
    order = np.argsort(values)
    return HessianEigen(values[order], vectors[:, order], (W.shape, H.shape, b.shape))


def _matvec(problem, x):
    hvp = problem.hvp()

    def matvec(vector):
        return backend.to_numpy(hvp(x, backend.to_tensor(np.ravel(vector))))

    return matvec


def dense_hessian(problem, x):
    """The exact Hessian of `problem`'s objective at the flat tensor x, as a
    symmetric NumPy matrix: one Hessian-vector product per column (small
    problems only: size^2 memory)."""
    matvec = _matvec(problem, x)
    size = int(sum(problem.sizes))
    dense = np.column_stack([matvec(column) for column in np.eye(size)])
    return (dense + dense.T) / 2


def _smallest_eigenpairs(operator, size, k, tolerance, start):
    """Lanczos for the k smallest eigenpairs, shifted so it converges.

    ARPACK's test is relative, |residual| <= tol |theta|, which can never hold
    for the cluster of (near-)zero eigenvalues a (near-)minimizer has, so
    which="SA" on H itself can iterate forever. On sigma I - H, with sigma a
    little above the largest eigenvalue, the wanted eigenvalues are the
    largest ones and near sigma, so the test becomes absolute at scale sigma.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    largest = eigsh(operator, k=1, which="LA", tol=1e-3, v0=start, return_eigenvectors=False)
    sigma = 1.05 * abs(float(largest[0])) + 1e-12
    flipped = LinearOperator(
        (size, size), matvec=lambda v: sigma * np.ravel(v) - operator.matvec(v), dtype=np.float64
    )
    values, vectors = eigsh(
        flipped, k=k, which="LA", tol=tolerance, v0=start, maxiter=100 * size
    )
    return sigma - values, vectors


def rotation_zero_modes(num_classes, feature_dim, lambda_b=DEFAULT_LAMBDA, rank=None, loss="ce"):
    """Zero Hessian eigenvalues at a global minimizer (see `hessian_min_eigenvalue`).

    dim O(d) - dim O(d - r) with r the rank of W* (default K - 1, a simplex
    ETF; pass `Optimum.rank`): d(d-1)/2 - (d-r)(d-r-1)/2, plus 1 when
    lambda_b = 0 and the loss is shift invariant (constant bias shift; not
    MSE).
    """
    d = int(feature_dim)
    r = int(num_classes) - 1 if rank is None else int(rank)
    modes = d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2
    return modes + (1 if lambda_b == 0 and losses.get(loss).shift_invariant else 0)
