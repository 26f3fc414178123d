r"""Exact global minima of the UFM, eq. (3), for every loss of `losses`.

eq. (3) with a loss L, balanced classes (n per class, N = nK), d >= K - 1:

    f(W, H, b) = (1/N) sum_{k,i} L(W h_{k,i} + b, y_k)
                 + lW/2 ||W||_F^2 + lH/2 ||H||_F^2 + lb/2 ||b||^2.

`nc_keras.ufm.theory.optimum` is the entry point (argument checks, the
cross-entropy closed form of Zhu et al. 2021, Theorem 3.1); it calls
`exact_optimum` here for the other losses. Where the minimum is not
established, `OptimumUnknownError` is raised: never a guess.

(a) A problem in the logits Z = W H. For every factorization of Z,
lW/2 ||W||^2 + lH/2 ||H||^2 >= sqrt(lW lH) ||W||_F ||H||_F >= mu ||Z||_*,
mu = sqrt(lW lH), with equality for the balanced SVD factorization
W = (lH/lW)^{1/4} U S^{1/2}, H = (lW/lH)^{1/4} S^{1/2} V^T (the variational
form of the nuclear norm in the proofs of Zhu et al. 2021, Thm 3.1, and Zhou
et al., ICML 2022). So min f = min over (Z, b), rank Z <= d, of

    F(Z, b) = (1/N) sum_i L(z_i + b, y_i) + mu ||Z||_* + lb/2 ||b||^2,

and every minimizer is balanced, lW ||W||^2 = lH ||H||^2, with
h_{k,i} = sqrt(lW/(lH n)) w_k once the columns of a class coincide. For a loss
convex in z (CE, label smoothing, MSE), F is convex and invariant under
permuting samples within a class and relabelling the classes; averaging a
minimizer over that group (Jensen) gives a symmetric one, z_{k,i} =
alpha e_k + beta 1, b = b 1. Then Z Z^T = n (alpha I + beta 11^T)^2 has
singular values sqrt(n) alpha (K-1 times) and sqrt(n) t, t = alpha + K beta:

    ||Z||_* = sqrt(n) ((K-1)|alpha| + |t|).

alpha is the logit margin (`Optimum.margin`), t the class-mean logit that
W H carries (`Optimum.logit_mean`).

(b) Shift-invariant losses, L(z + c1) = L(z) (label smoothing, focal; CE).
t = 0 and b = 0 are optimal (lb > 0), leaving with a' = (K-1) sqrt(n lW lH)

    g(alpha) = l(alpha) + a' alpha,  alpha >= 0,  f* = min g,

l(alpha) the loss of a sample with logits alpha e_y, whose true-class
probability is p(alpha) = e^alpha / (e^alpha + K - 1). The minimizer has rank
K - 1: a simplex ETF (so d >= K - 1 suffices), W W^T = A (I - 11^T/K) with
A = sqrt(n lH/lW) alpha.

* Label smoothing (smoothing a): l(alpha) = log(e^alpha + K - 1) - q alpha,
  q = 1 - a (K-1)/K, convex, g'(alpha) = p(alpha) - q + a'. With
  p* = q - a': if p* <= 1/K the origin is optimal, f* = log K; otherwise

      alpha* = log((K-1) p* / (1 - p*)),  f* = log((K-1)/(1 - p*)) - p* alpha*.

  a = 0 is Zhu et al.'s Theorem 3.1 rewritten. Since p* <= q < 1 the margin
  stays finite even as the lambdas vanish, and the geometry is still a
  simplex ETF (Zhou et al., NeurIPS 2022, "Are all losses created equal? A
  neural collapse perspective").

* Focal (gamma > 0): l = phi(u), u = -log p = log(1 + (K-1) e^{-alpha}),
  phi(u) = (1 - e^{-u})^gamma u. phi is not convex (concave for large u), so
  (a)'s symmetrization does not apply directly. The stationary points of g,
  phi'(u)(1 - e^{-u}) = a' in u on (0, log K], are bracketed on a fine grid
  and solved by Brent's method; the best (or the origin, u = log K) is then
  certified by a supporting line: if phi(v) >= phi(u*) + phi'(u*)(v - u*)
  for all v >= 0 (checked on [0, 80]; beyond, phi(v) = v in float64, so the
  slope phi'(u*) must be <= 1), replacing phi by that line gives a
  CE-type convex problem lower-bounding f whose minimum, by (a)-(b), is at
  the same alpha* and equals g(alpha*). So f* = g(alpha*), attained by the
  simplex ETF (as Zhou et al., NeurIPS 2022, state for focal loss). The test
  fails for large penalties, e.g. the origin for gamma = 2 and log K > ~1.2:
  then `OptimumUnknownError`.

(c) MSE, (1/2)||z - e_y||^2 (Zhou et al., ICML 2022; Han et al., ICLR 2022,
split it the same way into a centred "least-squares" part and the rest). The
error of a sample of class k, (alpha - 1) e_k + (beta + b) 1, is
(alpha - 1)(e_k - 1/K) + m 1 with m = (t - 1)/K + b, and f decouples:

    f = (K-1)/(2K) (alpha - 1)^2 + mu sqrt(n)(K-1)|alpha|
        + K/2 ((t - 1)/K + b)^2 + mu sqrt(n)|t| + lb K/2 b^2.

Minimizing over b, b = (1 - t)/(K(1 + lb)); both parts are soft
thresholds, with nu = K sqrt(n lW lH):

    alpha* = max(0, 1 - nu),   t* = max(0, 1 - nu (1 + lb)/lb)  (0 if lb = 0),
    b*     = (1 - t*) / (K (1 + lb)),
    f*     = (K-1)/(2K) (1 - alpha*)^2 + (K-1) nu/K alpha*
             + lb/(2K(1 + lb)) (1 - t*)^2 + nu/K t*.

Three regimes: (i) nu >= 1, the origin (W = H = 0) with b* = 1/(K(1+lb));
(ii) lb/(1+lb) <= nu < 1 (always when lb = 0), rank K - 1, a simplex ETF,
the bias carrying the targets' mean (b* = 1/K when lb = 0): the
neural-collapse solution of Zhou et al.; (iii) nu < lb/(1+lb), the bias is
so costly that W H carries part of the mean too: rank K (needs d >= K,
otherwise `OptimumUnknownError`), W W^T = sqrt(n lH/lW)(alpha* (I - 11^T/K)
+ t* 11^T/K), classifier cosine (t* - alpha*)/((K-1) alpha* + t*) in
(-1/(K-1), 0), an orthogonal frame in the limit lb -> infinity.
"""

import dataclasses
import math

import numpy as np

__all__ = ["Optimum", "OptimumUnknownError", "exact_optimum", "symmetric_optimum"]


class OptimumUnknownError(ValueError):
    """No exact global minimum of eq. (3) is established for these arguments
    (imbalanced classes, focal loss with large penalties, a rank the feature
    dimension cannot hold)."""


@dataclasses.dataclass(frozen=True)
class Optimum:
    """The global minimum of eq. (3) and the scales of its minimizers.

    value: f*. w_norm: the common row norm of W*. h_norm: the common norm of
    every feature column (h_{k,i} = sqrt(lW/(lH n)) w_k). bias: the common
    entry b* of b* 1 (0 for the shift-invariant losses whenever lb > 0; when
    lb = 0 any constant works and 0 is reported). at_origin: W* = 0, H* = 0.
    margin: alpha*, true-class logit minus any other class's logit. logit_mean:
    t*, the class-mean logit W* H* carries (0 but in MSE's rank-K regime).
    rank: rank of W* (K - 1 for a simplex ETF, K, or 0 at the origin).
    classifier_cosine: cos(w_j, w_k), j != k (-1/(K-1) for a simplex ETF; NaN
    at the origin). loss: the loss's name.
    """

    value: float
    w_norm: float
    h_norm: float
    bias: float
    at_origin: bool
    margin: float
    logit_mean: float
    rank: int
    classifier_cosine: float
    loss: str


def exact_optimum(K, n, lambdas, loss, feature_dim=None):
    """`Optimum` of eq. (3) for a `losses.Loss` other than CE (see module doc).

    K, n: classes and samples per class (balanced); lambdas: (lW, lH, lb);
    feature_dim: checked against the minimizer's rank when given.
    """
    lambda_w, lambda_h, lambda_b = lambdas
    if loss.name == "mse":
        return _mean_squared_error(K, n, lambda_w, lambda_h, lambda_b, feature_dim)
    slope = (K - 1) * math.sqrt(n * lambda_w * lambda_h)  # a'
    if loss.name == "focal" and loss.gamma > 0:
        margin, value = _focal(K, slope, loss.gamma)
    elif loss.name in ("label_smoothing", "focal", "ce"):
        margin, value = _smoothed_cross_entropy(K, slope, loss.smoothing or 0.0)
    else:
        raise OptimumUnknownError(f"no exact optimum is derived for loss {loss.name!r}")
    return symmetric_optimum(K, n, lambda_w, lambda_h, margin, value, loss.name)


def symmetric_optimum(K, n, lambda_w, lambda_h, margin, value, loss_name):
    """`Optimum` of a shift-invariant loss from its margin alpha* and f*:
    a simplex ETF with w^2 = sqrt(n lH/lW) alpha* (K-1)/K, b* = 0."""
    w_norm = math.sqrt(math.sqrt(n * lambda_h / lambda_w) * margin * (K - 1) / K)
    at_origin = margin == 0.0
    return Optimum(
        value=value,
        w_norm=w_norm,
        h_norm=math.sqrt(lambda_w / (lambda_h * n)) * w_norm,
        bias=0.0,
        at_origin=at_origin,
        margin=margin,
        logit_mean=0.0,
        rank=0 if at_origin else K - 1,
        classifier_cosine=math.nan if at_origin else -1.0 / (K - 1),
        loss=loss_name,
    )


def _smoothed_cross_entropy(K, slope, smoothing):
    """(alpha*, f*) of label smoothing (CE for smoothing 0), closed form (b)."""
    p = 1.0 - smoothing * (K - 1) / K - slope
    if p <= 1.0 / K:
        return 0.0, math.log(K)
    margin = math.log((K - 1) * p / (1.0 - p))
    return margin, math.log((K - 1) / (1.0 - p)) - p * margin


def _mean_squared_error(K, n, lambda_w, lambda_h, lambda_b, feature_dim):
    """`Optimum` of MSE: the two soft thresholds of (c)."""
    nu = K * math.sqrt(n * lambda_w * lambda_h)
    alpha = max(0.0, 1.0 - nu)
    t = 0.0 if lambda_b == 0 else max(0.0, 1.0 - nu * (1.0 + lambda_b) / lambda_b)
    value = (
        (K - 1) / (2 * K) * (1 - alpha) ** 2
        + (K - 1) * nu / K * alpha
        + lambda_b / (2 * K * (1 + lambda_b)) * (1 - t) ** 2
        + nu / K * t
    )
    rank = (K - 1 if alpha > 0 else 0) + (1 if t > 0 else 0)
    if feature_dim is not None and feature_dim < rank:
        raise OptimumUnknownError(
            f"the MSE minimizer of the relaxation has rank {rank} > d = {feature_dim}; "
            "the minimum under the rank constraint is not established"
        )
    w_norm = math.sqrt(math.sqrt(n * lambda_h / lambda_w) * (alpha * (K - 1) + t) / K)
    return Optimum(
        value=value,
        w_norm=w_norm,
        h_norm=math.sqrt(lambda_w / (lambda_h * n)) * w_norm,
        bias=(1.0 - t) / (K * (1.0 + lambda_b)),
        at_origin=rank == 0,
        margin=alpha,
        logit_mean=t,
        rank=rank,
        classifier_cosine=(t - alpha) / ((K - 1) * alpha + t) if rank else math.nan,
        loss="mse",
    )


# ---------------------------------------------------------------- focal loss


def _phi(u, gamma):
    """Focal loss as a function of u = -log p_y: (1 - e^{-u})^gamma u."""
    return (-np.expm1(-u)) ** gamma * u


def _phi_slope(u, gamma):
    """phi'(u) = g^gamma + gamma e^{-u} u g^{gamma-1}, g = 1 - e^{-u}."""
    g = -np.expm1(-u)
    # At u = 0 the second term is 0 * inf for gamma < 1; its limit is 0.
    safe = np.where(g > 0, g, 1.0)
    return g**gamma + gamma * np.exp(-u) * np.where(g > 0, u * safe ** (gamma - 1.0), 0.0)


def _focal(K, slope, gamma):
    """(alpha*, f*) of the focal loss: the 1-D problem of (b) in u, certified.

    alpha(u) = log(K-1) - u - log(1 - e^{-u}); g's stationary points solve
    r(u) = phi'(u)(1 - e^{-u}) - a' = 0 with r < 0 to the left (a minimum in
    alpha, which decreases as u grows).
    """
    from scipy.optimize import brentq

    def alpha_of(u):
        return math.log(K - 1) - u - math.log(-math.expm1(-u))

    def g(u):
        return float(_phi(u, gamma)) + slope * alpha_of(u)

    def residual(u):
        return float(_phi_slope(u, gamma)) * -math.expm1(-u) - slope

    top = math.log(K)  # alpha = 0
    candidates = [top] if residual(top) <= 0 else []  # g'(0) >= 0: the origin
    # Geometric near 0 (large margins: tiny lambdas), linear beyond.
    grid = np.concatenate([np.geomspace(1e-12, 1e-3, 400), np.linspace(1e-3, top, 4001)[1:]])
    values = np.array([residual(u) for u in grid])
    for i in np.flatnonzero((values[:-1] < 0) & (values[1:] >= 0)):
        if values[i + 1] == 0:
            candidates.append(grid[i + 1])
        else:
            candidates.append(brentq(residual, grid[i], grid[i + 1], xtol=1e-300, rtol=1e-15))
    if not candidates:
        raise OptimumUnknownError("focal loss: no stationary point on the simplex-ETF family")
    best = min(candidates, key=g)
    _certify_supporting_line(best, gamma)
    return (0.0 if best == top else alpha_of(best)), g(best)


def _certify_supporting_line(u_star, gamma):
    """Raises unless phi(v) >= phi(u*) + phi'(u*)(v - u*) for all v >= 0."""
    slope = float(_phi_slope(np.float64(u_star), gamma))
    message = (
        f"focal loss (gamma = {gamma:g}): the global minimum is not established "
        f"at u* = -log p* = {u_star:.4g} (penalties too large): "
    )
    if slope > 1.0:
        raise OptimumUnknownError(message + f"phi'(u*) = {slope:.3g} > 1")
    grid = np.concatenate([np.linspace(0.0, 10.0, 200001), np.linspace(10.0, 80.0, 20001)])
    level = float(_phi(np.float64(u_star), gamma))
    gap = _phi(grid, gamma) - (level + slope * (grid - u_star))
    if gap.min() < -1e-13 * (1.0 + abs(level)):
        raise OptimumUnknownError(message + "phi lies below its tangent there")
