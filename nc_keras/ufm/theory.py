r"""The unconstrained feature model, eq. (3), and its global minimum (Theorem 3.1).

K classes with n samples each (N = nK), classifier W (K x d), features
H (d x N, one column per sample, sorted by class by `class_labels`), bias b (K):

    f(W, H, b) = (1/N) sum_{k,i} CE(W h_{k,i} + b, y_k)
                 + lW/2 ||W||_F^2 + lH/2 ||H||_F^2 + lb/2 ||b||^2      (3)

The loss is a sample mean; the penalty on H is a plain sum over all N columns.
"""

import dataclasses
import math

import keras
import numpy as np

from nc_keras import backend
from nc_keras.ufm import checks, losses

__all__ = [
    "DEFAULT_LAMBDA",
    "class_labels",
    "objective",
    "penalized_objective",
    "Optimum",
    "optimum",
    "construct_optimum",
    "random_start",
]

# The weight decay of the paper's experiments is 5e-4; the UFM checks use a
# larger 5e-3 so that the optimum is well away from the origin yet the
# problem stays well conditioned (the minimum's curvature scales with it).
DEFAULT_LAMBDA = 5e-3


def class_labels(num_classes, n_per_class):
    """Labels 0..K-1, each repeated n times: the column order of H."""
    return np.repeat(np.arange(int(num_classes)), int(n_per_class))


def objective(W, H, b, labels, lambda_w, lambda_h, lambda_b):
    """f(W, H, b) of eq. (3), computed with `keras.ops` (differentiable).

    Args:
        W: (K, d) classifier; H: (d, N) features, column i for sample i;
        b: (K,) bias; labels: (N,) integers in [0, K) (NumPy or a concrete
        tensor).
        lambda_w, lambda_h, lambda_b: the weight-decay parameters.
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
        labels = checks.labels(labels, num_classes, H.shape[1])
        targets = keras.ops.transpose(keras.ops.one_hot(labels, num_classes, dtype=W.dtype))
        return penalized_objective(W, H, b, targets, lambda_w, lambda_h, lambda_b)


def penalized_objective(
    W, H, b, targets, lambda_w, lambda_h, lambda_b, columns=None, loss="cross_entropy"
):
    """eq. (3) with one-hot targets Y (K, N) and any loss of `losses.LOSSES`.

    `columns` (integer indices) averages the loss over that minibatch of
    samples instead of all N: an unbiased estimate of the loss term; the
    penalty is always the full one.
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
    data_term = ops.sum(per_sample) / per_sample.shape[0]
    penalty = (
        lambda_w * ops.sum(W * W) + lambda_h * ops.sum(H * H) + lambda_b * ops.sum(b * b)
    ) / 2
    return data_term + penalty


@dataclasses.dataclass(frozen=True)
class Optimum:
    """The global minimum of eq. (3) and the scales of its minimizers.

    value: f*; w_norm: the common row norm w* of W*; h_norm: the common norm
    of every feature column h*; bias: the common entry b* of b* = b* 1
    (0 whenever lambda_b > 0; when lambda_b = 0 any constant works and 0 is
    reported); at_origin: whether the minimizer is (0, 0, 0).
    """

    value: float
    w_norm: float
    h_norm: float
    bias: float
    at_origin: bool


def optimum(num_classes, n_per_class, lambda_w, lambda_h, lambda_b):
    r"""The global minimum of eq. (3), in closed form (Theorem 3.1).

    Assumes the cross-entropy loss, balanced classes and d >= K - 1 (the value
    does not depend on d).

    Raises ValueError, naming the argument, unless K >= 2 and n >= 1 are whole
    numbers (4.0 is taken as 4; 2.7 is refused) and the lambdas are finite
    with lambda_w, lambda_h > 0 and lambda_b >= 0.

    Derivation. By Theorem 3.1 (eq. (4), (5)) every global minimizer has rows
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

    (using 1 + (K-1) e^{-c rho*} = c / (c - a)), w* = sqrt(rho*) and
    ||h*|| = s w*.
    """
    K = checks.count(num_classes, "num_classes", minimum=2)
    n = checks.count(n_per_class, "n_per_class")
    lambda_w = checks.nonnegative(lambda_w, "lambda_w")
    lambda_h = checks.nonnegative(lambda_h, "lambda_h")
    lambda_b = checks.nonnegative(lambda_b, "lambda_b")
    if lambda_w == 0 or lambda_h == 0:
        raise ValueError(
            "Theorem 3.1 needs lambda_w > 0, lambda_h > 0, lambda_b >= 0; got "
            f"{lambda_w}, {lambda_h}, {lambda_b}"
        )
    scale = math.sqrt(lambda_w / (lambda_h * n))
    c = scale * K / (K - 1)
    a = K * lambda_w
    if a >= c * (K - 1) / K:
        return Optimum(value=math.log(K), w_norm=0.0, h_norm=0.0, bias=0.0, at_origin=True)
    log_ratio = math.log((K - 1) * (c - a) / a)
    rho = log_ratio / c
    value = math.log(c / (c - a)) + (a / c) * log_ratio
    w_norm = math.sqrt(rho)
    return Optimum(
        value=value, w_norm=w_norm, h_norm=scale * w_norm, bias=0.0, at_origin=False
    )


def construct_optimum(
    num_classes, feature_dim, n_per_class, lambda_w, lambda_h, lambda_b, rotation_seed=None
):
    """An explicit global minimizer of eq. (3): (W, H, b, labels), NumPy float64.

    W = w* M^T with M the K-simplex ETF of eq. (5) (`nc_keras.layers.simplex_etf`,
    P = first K columns of I_d, or a random rotation from `rotation_seed`),
    h_{k,i} = sqrt(lW/(lH n)) w_k as in eq. (4), b = 0. Needs d >= K - 1.
    """
    from nc_keras.layers import simplex_etf

    best = optimum(num_classes, n_per_class, lambda_w, lambda_h, lambda_b)
    W = best.w_norm * simplex_etf(num_classes, feature_dim, rotation_seed).T
    labels = class_labels(num_classes, n_per_class)
    H = math.sqrt(lambda_w / (lambda_h * n_per_class)) * W[labels].T
    b = np.full(int(num_classes), best.bias)
    return W, H, b, labels


def random_start(num_classes, feature_dim, n_per_class, seed=0, scale=1.0):
    """(W, H, b) with i.i.d. N(0, scale^2) entries, NumPy float64."""
    rng = np.random.default_rng(seed)
    K, d, N = int(num_classes), int(feature_dim), int(num_classes) * int(n_per_class)
    return (
        scale * rng.standard_normal((K, d)),
        scale * rng.standard_normal((d, N)),
        scale * rng.standard_normal(K),
    )
