r"""The unconstrained feature model, eq. (3), and its global minimum (Theorem 3.1).

K classes with n samples each (N = nK), classifier W (K x d), features
H (d x N, one column per sample, sorted by class by `class_labels`), bias b (K):

    f(W, H, b) = (1/N) sum_{k,i} CE(W h_{k,i} + b, y_k)
                 + lW/2 ||W||_F^2 + lH/2 ||H||_F^2 + lb/2 ||b||^2      (3)

The loss is a sample mean; the penalty on H is a plain sum over all N columns.
CE may be replaced by any loss of `nc_keras.ufm.losses` (`loss=`), with the
same regularizers; the exact minima of the other losses are in
`nc_keras.ufm.optima`. `n_per_class` may also be a sequence of K counts
(imbalanced classes, N = sum n_k).
"""

import math

import keras
import numpy as np

from nc_keras import backend, validation
from nc_keras.ufm import losses, optima
from nc_keras.ufm.optima import Optimum, OptimumUnknownError

__all__ = [
    "DEFAULT_LAMBDA",
    "class_labels",
    "objective",
    "penalized_objective",
    "Optimum",
    "OptimumUnknownError",
    "class_counts",
    "optimum",
    "construct_optimum",
    "etf_family_point",
    "random_start",
]

# The weight decay of the paper's experiments is 5e-4; the UFM checks use a
# larger 5e-3 so that the optimum is well away from the origin yet the
# problem stays well conditioned (the minimum's curvature scales with it).
DEFAULT_LAMBDA = 5e-3


def class_counts(num_classes, n_per_class):
    """The K class sizes as an int array: n repeated K times, or the K counts
    given (whole numbers >= 1; ValueError naming the argument otherwise)."""
    K = validation.class_count(num_classes)
    if np.ndim(n_per_class) == 0:
        return np.full(K, validation.count(n_per_class, "n_per_class"), dtype=np.int64)
    counts = [validation.count(value, "each entry of n_per_class") for value in n_per_class]
    if len(counts) != K:
        raise ValueError(f"n_per_class must be one count or K = {K} of them; got {len(counts)}")
    return np.array(counts, dtype=np.int64)


def class_labels(num_classes, n_per_class):
    """Labels 0..K-1, label k repeated n_k times: the column order of H."""
    return np.repeat(np.arange(int(num_classes)), class_counts(num_classes, n_per_class))


def objective(W, H, b, labels, lambda_w, lambda_h, lambda_b, loss="ce", smoothing=None, gamma=None):
    """f(W, H, b) of eq. (3), computed with `keras.ops` (differentiable).

    Args:
        W: (K, d) classifier; H: (d, N) features, column i for sample i;
        b: (K,) bias; labels: (N,) integers in [0, K) (NumPy or a concrete
        tensor).
        lambda_w, lambda_h, lambda_b: the weight-decay parameters.
        loss, smoothing, gamma: the loss (`nc_keras.ufm.losses.get`).
    Returns:
        A scalar tensor of the active backend. NumPy inputs are converted to
        float64 tensors first (JAX with x64 enabled for the computation).
    Raises:
        ValueError: labels outside [0, K), not integers, or not one per
        column of H (on every backend: `keras.ops.one_hot` alone would turn
        some of these into all-zero targets).
    """
    with backend.float64():
        W, H, b = (
            part if keras.ops.is_tensor(part) else backend.to_tensor(part) for part in (W, H, b)
        )
        num_classes = W.shape[0]
        _check_shapes(W, H, b, len(np.atleast_1d(keras.ops.convert_to_numpy(labels))))
        labels = validation.labels(labels, num_classes, H.shape[1])
        targets = keras.ops.transpose(keras.ops.one_hot(labels, num_classes, dtype=W.dtype))
        return penalized_objective(
            W, H, b, targets, lambda_w, lambda_h, lambda_b,
            loss=losses.get(loss, smoothing, gamma),
        )


def _check_shapes(W, H, b, num_samples):
    """ValueError naming the argument whose shape does not fit W (K, d) and N labels."""
    if len(W.shape) != 2:
        raise ValueError(f"W must have shape (K, d); got {tuple(W.shape)}")
    K, d = W.shape
    # A matching d with another column count is the labels' fault (said there).
    if len(H.shape) != 2 or H.shape[0] != d:
        hint = " (H transposed?)" if tuple(H.shape) == (num_samples, d) else ""
        raise ValueError(f"H must have shape (d, N) = ({d}, {num_samples}), one column per "
                         f"sample; got {tuple(H.shape)}{hint}")
    if tuple(b.shape) != (K,):
        raise ValueError(f"b must have shape (K,) = ({K},); got {tuple(b.shape)}")


def penalized_objective(
    W, H, b, targets, lambda_w, lambda_h, lambda_b, columns=None, loss="ce", weights=None
):
    """eq. (3) with one-hot targets Y (K, N) and any loss of `losses.LOSSES`.

    `columns` (integer indices) averages the loss over that minibatch of
    samples instead of all N: an unbiased estimate of the loss term; the
    penalty is always the full one.

    `weights` (N,), optional tensor: column i stands for weights[i] identical
    samples, so the loss term is sum_i w_i L_i / sum_i w_i and the H penalty
    lH/2 sum_i w_i ||h_i||^2 -- eq. (3) on the expanded H. With one column
    per class and w = the class sizes this is the class-mean problem of an
    imbalanced UFM (`nc_keras.ufm.minority`), where the weights may be any
    positive reals. Not combined with `columns`.
    """
    ops = keras.ops
    if columns is not None:
        features = ops.take(H, columns, axis=1)
        targets = ops.take(targets, columns, axis=1)
    else:
        features = H
    # Keras's type promotion maps float64 to float32 outside TensorFlow:
    # ops.matmul on torch and ops.mean on JAX silently compute in float32.
    # ops.einsum and ops.sum keep float64 on every backend (tests check it).
    logits = ops.einsum("kd,dn->kn", W, features) + ops.expand_dims(b, 1)
    per_sample = losses.get(loss)(logits, targets)
    if weights is None:
        data_term = ops.sum(per_sample) / per_sample.shape[0]
        h_penalty = ops.sum(H * H)
    else:
        data_term = ops.sum(weights * per_sample) / ops.sum(weights)
        h_penalty = ops.sum(weights * ops.sum(H * H, axis=0))
    penalty = (lambda_w * ops.sum(W * W) + lambda_h * h_penalty + lambda_b * ops.sum(b * b)) / 2
    return data_term + penalty



def optimum(
    num_classes, n_per_class, lambda_w, lambda_h, lambda_b, loss="ce", smoothing=None,
    gamma=None, feature_dim=None,
):
    r"""The global minimum of eq. (3), exactly: `Optimum`.

    Balanced classes only (an int `n_per_class`, or K equal counts); for
    imbalanced counts no closed form is known and `OptimumUnknownError` is
    raised. The value does not depend on d as long as the minimizer's rank
    fits (d >= K - 1, or d >= K for MSE's rank-K regime); `feature_dim`, if
    given, is checked against it (`OptimumUnknownError` otherwise).

    `loss`, `smoothing`, `gamma`: the loss (`nc_keras.ufm.losses.get`). The
    other losses are derived in `nc_keras.ufm.optima`; `OptimumUnknownError`
    where no global minimum is established (never a guess).

    Raises ValueError, naming the argument, unless K >= 2 and n >= 1 are whole
    numbers (4.0 is taken as 4; 2.7 is refused) and the lambdas are finite
    with lambda_w, lambda_h > 0 and lambda_b >= 0.

    Cross-entropy (Theorem 3.1). Every global minimizer has rows
    of equal norm w, W W^T = w^2 K/(K-1) (I - 11^T/K), features
    h_{k,i} = s w_k with s = sqrt(lW / (lH n)), and b = b 1 (b = 0 if
    lb > 0; a constant b never changes the loss). For a sample of class k the
    logits W h_{k,i} = s W w_k are s w^2 for class k and -s w^2/(K-1) for the
    other K-1 classes, so every sample has the same cross-entropy

        log(1 + (K-1) exp(-c rho)),   rho = w^2,  c = s K/(K-1).

    The penalties are lW/2 K w^2 (W) and lH/2 N s^2 w^2 = lW/2 K w^2 (H), so
    along the structured family

        g(rho) = log(1 + (K-1) exp(-c rho)) + a rho,   a = K lW,  rho >= 0,

    and f* = min g. g is strictly convex (g'' > 0), with

        g'(rho) = a - c (K-1) e^{-c rho} / (1 + (K-1) e^{-c rho}).

    If g'(0) = a - c (K-1)/K >= 0 the penalties win: rho* = 0, the minimizer is
    the origin and f* = log K. Otherwise g'(rho) = 0 gives
    (K-1) e^{-c rho} (c - a) = a, i.e.

        rho* = (1/c) log((K-1)(c - a) / a),
        f*   = log(c / (c - a)) + (a/c) log((K-1)(c - a) / a),

    (using 1 + (K-1) e^{-c rho*} = c / (c - a)), w* = sqrt(rho*),
    ||h*|| = s w* and the logit margin c rho*.
    """
    counts = class_counts(num_classes, n_per_class)
    K, n = len(counts), int(counts[0])
    lambda_w = validation.nonnegative(lambda_w, "lambda_w")
    lambda_h = validation.nonnegative(lambda_h, "lambda_h")
    lambda_b = validation.nonnegative(lambda_b, "lambda_b")
    if lambda_w == 0 or lambda_h == 0:
        raise ValueError(
            "Theorem 3.1 needs lambda_w > 0, lambda_h > 0, lambda_b >= 0; got "
            f"{lambda_w}, {lambda_h}, {lambda_b}"
        )
    if np.any(counts != n):
        raise OptimumUnknownError(
            f"no exact global minimum is known for imbalanced classes (counts {counts.tolist()})"
        )
    if feature_dim is not None and feature_dim < K - 1:
        raise OptimumUnknownError(f"d = {feature_dim} < K - 1 = {K - 1}: no simplex ETF fits")
    loss = losses.get(loss, smoothing, gamma)
    if loss.name != "ce":
        return optima.exact_optimum(K, n, (lambda_w, lambda_h, lambda_b), loss, feature_dim)
    scale = math.sqrt(lambda_w / (lambda_h * n))
    c = scale * K / (K - 1)
    a = K * lambda_w
    if a >= c * (K - 1) / K:
        return optima.symmetric_optimum(K, n, lambda_w, lambda_h, 0.0, math.log(K), "ce")
    log_ratio = math.log((K - 1) * (c - a) / a)
    value = math.log(c / (c - a)) + (a / c) * log_ratio
    return optima.symmetric_optimum(K, n, lambda_w, lambda_h, log_ratio, value, "ce")


def construct_optimum(
    num_classes, feature_dim, n_per_class, lambda_w, lambda_h, lambda_b, rotation_seed=None,
    loss="ce", smoothing=None, gamma=None,
):
    """An explicit global minimizer of eq. (3): (W, H, b, labels), NumPy float64.

    The point of `etf_family_point` at the `optimum`'s margin, logit mean
    and bias: a simplex ETF W (eq. (5)), h_{k,i} = sqrt(lW/(lH n)) w_k
    (eq. (4)), b = b* 1; rank K in MSE's rank-K regime. Needs d >= rank.
    """
    best = optimum(
        num_classes, n_per_class, lambda_w, lambda_h, lambda_b, loss, smoothing, gamma,
        feature_dim=feature_dim,
    )
    return etf_family_point(
        num_classes, feature_dim, n_per_class, lambda_w, lambda_h, best.margin,
        best.logit_mean, best.bias, rotation_seed,
    )


def etf_family_point(
    num_classes, feature_dim, n_per_class, lambda_w, lambda_h, margin, logit_mean=0.0,
    bias=0.0, rotation_seed=None,
):
    """(W, H, b, labels) of the structured family every `optimum` lies in.

    W = sqrt(A (K-1)/K) M^T + sqrt(T/K) 1 u^T with M the K-simplex ETF of
    eq. (5) (`nc_keras.layers.simplex_etf`, P = first K columns of I_d, or a
    random rotation from `rotation_seed`) and u a unit vector orthogonal to
    its rows, A = sqrt(n lH/lW) margin, T = sqrt(n lH/lW) logit_mean, so that
    W W^T = A (I - 11^T/K) + T 11^T/K; h_{k,i} = sqrt(lW/(lH n)) w_k (balanced
    between W and H); b = bias 1. The class-k logits W h_{k,i} are then
    margin e_k + const 1 with class mean logit_mean: eq. (3) along this
    family is the 1-D (or, with T and b, 3-D) function the optima minimize,
    which the tests scan by brute force. margin, logit_mean >= 0; T > 0
    needs d >= K.
    """
    from nc_keras.layers import simplex_etf

    K, n = int(num_classes), int(class_counts(num_classes, n_per_class)[0])
    etf = simplex_etf(K, feature_dim, rotation_seed).T
    scale = math.sqrt(n * lambda_h / lambda_w)
    W = math.sqrt(scale * margin * (K - 1) / K) * etf
    if logit_mean > 0:
        if feature_dim < K:
            raise ValueError(f"a rank-K classifier needs d >= K = {K}; got d = {feature_dim}")
        # The last right singular vector of the rank-(K-1) ETF (d >= K here).
        orthogonal = np.linalg.svd(etf)[2][K - 1]
        W = W + math.sqrt(scale * logit_mean / K) * np.outer(np.ones(K), orthogonal)
    labels = class_labels(K, n)
    H = math.sqrt(lambda_w / (lambda_h * n)) * W[labels].T
    return W, H, np.full(K, float(bias)), labels


def random_start(num_classes, feature_dim, n_per_class, seed=0, scale=1.0):
    """(W, H, b) with i.i.d. N(0, scale^2) entries, NumPy float64
    (`n_per_class`: n or K counts; H has N = sum n_k columns)."""
    rng = np.random.default_rng(seed)
    K, d = int(num_classes), int(feature_dim)
    N = int(class_counts(K, n_per_class).sum())
    return (
        scale * rng.standard_normal((K, d)),
        scale * rng.standard_normal((d, N)),
        scale * rng.standard_normal(K),
    )
