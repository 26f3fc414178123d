r"""Minority collapse in the imbalanced UFM, eq. (3) with unequal class sizes.

Fang et al. (PNAS 2021, "Exploring deep neural networks via layer-peeled
model: minority collapse in imbalanced training", Figs. 1-2): with K_A
majority classes of n_A samples and K_B minority classes of n_B = n_A / R,
the learned classifier rows of the minority classes align more and more as
the imbalance ratio R grows, and beyond a finite threshold they coincide
(cosine 1): the model can no longer tell the minority classes apart. Fixing
W to a simplex ETF (Yang et al., NeurIPS 2022) keeps their logits apart.

No closed form is known for imbalanced classes, so the minima here are
numerical, judged by the gradient norm. They are computed on an exact
reduction to class means: replacing every h_{k,i} by its class mean hbar_k
never increases f (the loss is convex in h, Jensen, and
sum_i ||h_{k,i}||^2 >= n_k ||hbar_k||^2), so

    min f = min over (W, Hbar, b) of sum_k (n_k/N) L(W hbar_k + b, k)
            + lW/2 ||W||^2 + lH/2 sum_k n_k ||hbar_k||^2 + lb/2 ||b||^2,

`Problem` with one column per class and the counts as `weights`, which may
then be any positive reals (n_B = n_A / R need not be an integer). For
d >= K the minimum does not depend on d (eq. (3) is a problem in Z = W H,
`nc_keras.ufm.optima`), so d = K by default.

Solver: L-BFGS (`nc_keras.backend.lbfgs_minimize`) from a few random starts,
then Newton steps on the dense Hessian. L-BFGS alone stalls near a
gradient of 1e-8: the weights n_k make the H block about n_k lH / lW times
stiffer than the W block, and the problem is small enough (K d + d K + K
variables) for exact Newton steps.
"""

import dataclasses
import math

import numpy as np

from nc_keras import backend
from nc_keras.collapse import formulas
from nc_keras.ufm.hessian import dense_hessian
from nc_keras.ufm.problem import Problem
from nc_keras.ufm.theory import construct_optimum, random_start

__all__ = ["MinorityResult", "minority_collapse", "solve_class_means"]

# Minority rows count as merged above this mean cosine, and as vanished when
# their norm is below this fraction of the majority rows' norm.
MERGED_COSINE = 1.0 - 1e-6
VANISHED_NORM = 1e-8


@dataclasses.dataclass
class MinorityResult:
    """`minority_collapse`'s sweep: one row per imbalance ratio R.

    Row keys: "ratio"; with W learned: "minority_w_cos", "majority_w_cos"
    (mean pairwise cosine of the classifier rows of that group; NaN where the
    rows are 0), "norm_ratio" (mean minority row norm / mean majority row
    norm), "minority_h_cos" (class-mean features), "objective",
    "gradient" (largest gradient entry); with W fixed to a simplex ETF:
    "fixed_h_cos" (minority class-mean features), "fixed_logit_cos"
    (minority centred logits W hbar_k + b minus their mean over classes),
    "fixed_gradient".
    """

    num_major: int
    num_minor: int
    n_major: float
    feature_dim: int
    lambdas: tuple
    rows: list

    COLUMNS = (
        ("ratio", "R"),
        ("minority_w_cos", "cos minority w"),
        ("majority_w_cos", "cos majority w"),
        ("norm_ratio", "|w minor|/|w major|"),
        ("minority_h_cos", "cos minority h"),
        ("fixed_h_cos", "fixed ETF: cos minority h"),
        ("fixed_logit_cos", "fixed ETF: cos minority logits"),
        ("gradient", "max |grad|"),
        ("fixed_gradient", "fixed: max |grad|"),
    )

    def table(self):
        from nc_keras.reporting import format_table

        formats = {key: "+.4f" for key in ("minority_w_cos", "majority_w_cos", "minority_h_cos",
                                             "fixed_h_cos", "fixed_logit_cos")}
        formats.update(ratio=".4g", norm_ratio=".3g", gradient=".1e", fixed_gradient=".1e")
        return format_table(self.rows, self.COLUMNS, formats)

    def _first_ratio(self, test):
        return next((row["ratio"] for row in self.rows if test(row)), None)

    @property
    def collapse_ratio(self):
        """The smallest swept R at which the minority rows have merged (mean
        cosine >= `MERGED_COSINE`) or vanished; None if they never do."""
        return self._first_ratio(
            lambda row: row["minority_w_cos"] >= MERGED_COSINE or row["norm_ratio"] < VANISHED_NORM
        )

    @property
    def vanish_ratio(self):
        """The smallest swept R at which the minority rows are 0 (None if never)."""
        return self._first_ratio(lambda row: row["norm_ratio"] < VANISHED_NORM)


def minority_collapse(
    ratios=None,
    num_major=5,
    num_minor=5,
    n_major=100,
    lambda_w=1e-3,
    lambda_h=1e-3,
    lambda_b=1e-3,
    feature_dim=None,
    starts=2,
    seed=0,
    progress=False,
):
    """Sweeps the imbalance ratio R = n_major / n_minor of the CE UFM.

    Classes 0..num_major-1 have n_major samples, the num_minor others
    n_major / R (a real number: see the module doc). At each R, eq. (3) is
    minimized twice (`solve_class_means`): with W learned, and with W fixed
    to the balanced optimum's simplex ETF at n = n_major
    (`construct_optimum`, so both coincide at R = 1).

    Args:
        ratios: the R values (default: 31 geometric points in [1, 1000]).
        num_major, num_minor, n_major: the split and the majority class size.
        lambda_w, lambda_h, lambda_b: the weight decay of eq. (3).
        feature_dim: d (default K = num_major + num_minor).
        starts, seed: random starts of each minimization.
        progress: print one line per R.
    Returns:
        `MinorityResult` (`.table()`, `.collapse_ratio`; `plot_minority_collapse`).
    """
    K = num_major + num_minor
    d = int(feature_dim or K)
    lambdas = (lambda_w, lambda_h, lambda_b)
    ratios = np.geomspace(1.0, 1000.0, 31) if ratios is None else np.asarray(ratios, float)
    fixed_W = construct_optimum(K, d, n_major, *lambdas)[0]
    major, minor = slice(0, num_major), slice(num_major, K)
    rows = []
    for ratio in ratios:
        counts = np.array([n_major] * num_major + [n_major / ratio] * num_minor, dtype=float)
        learned = solve_class_means(counts, d, lambdas, starts=starts, seed=seed)
        # With W fixed, eq. (3) is convex in (H, b): one start finds its minimum.
        fixed = solve_class_means(counts, d, lambdas, fixed_W, starts=1, seed=seed)
        W, features = learned["W"], learned["H"].T
        norms = np.linalg.norm(W, axis=1)
        logits = fixed_W @ fixed["H"] + fixed["b"][:, None]
        centred = (logits - logits.mean(axis=0)).T
        row = {
            "ratio": float(ratio),
            "minority_w_cos": _mean_pairwise_cosine(W[minor], W),
            "majority_w_cos": _mean_pairwise_cosine(W[major], W),
            "norm_ratio": float(norms[minor].mean() / norms[major].mean()),
            "minority_h_cos": _mean_pairwise_cosine(features[minor], features),
            "objective": learned["value"],
            "gradient": learned["gradient"],
            "fixed_h_cos": _mean_pairwise_cosine(fixed["H"].T[minor], fixed["H"].T),
            "fixed_logit_cos": _mean_pairwise_cosine(centred[minor], centred),
            "fixed_gradient": fixed["gradient"],
        }
        rows.append(row)
        if progress:
            print(
                f"  R = {ratio:8.2f}: cos minority w {row['minority_w_cos']:+.4f}, "
                f"|w minor|/|w major| {row['norm_ratio']:.3g}, fixed ETF cos minority h "
                f"{row['fixed_h_cos']:+.4f}, max |grad| {row['gradient']:.1e}",
                flush=True,
            )
    return MinorityResult(num_major, num_minor, n_major, d, lambdas, rows)


def solve_class_means(
    counts, feature_dim, lambdas, fixed_classifier=None, starts=2, seed=0, loss="ce",
    lbfgs_steps=300, newton_steps=30,
):
    """The minimum of eq. (3) for classes of sizes `counts`, on class means.

    `counts`: K positive reals; `fixed_classifier`: optional (K, d) W held
    fixed. Best of `starts` L-BFGS runs of at most `lbfgs_steps` iterations
    (random starts of scale 0.1, seeds seed, seed+1, ...), polished by at
    most `newton_steps` Newton steps. Returns a dict with W (K, d),
    H (d, K: column k is class k's mean feature), b, value and gradient (its
    largest entry).
    """
    counts = np.asarray(counts, dtype=float)
    K, d = len(counts), int(feature_dim)
    with backend.float64():
        problem = Problem(
            K, d, None, lambdas, labels=np.arange(K), loss=loss, weights=counts,
            fixed_classifier=fixed_classifier,
        )
        best = None
        for start in range(starts):
            x0 = problem.flatten(*random_start(K, d, 1, seed + start, scale=0.1))
            run = backend.lbfgs_minimize(problem.value_and_grad, x0, lbfgs_steps, 1e-9, history=20)
            if best is None or run.value < best.value:
                best = run
        x, value, gradient = _newton_polish(problem, backend.to_numpy(best.position), newton_steps)
        W, H, b = problem.unflatten_numpy(backend.to_tensor(x))
    return {"W": W, "H": H, "b": b, "value": value, "gradient": gradient}


def _newton_polish(problem, x, steps):
    """Damped Newton steps x <- x - t H^+ g on the dense Hessian, with its
    non-positive and near-zero eigenvalues (the rotation symmetry; negative
    curvature away from the minimum) left out and t halved until f does not
    rise beyond round-off. Ends at the point with the smallest gradient.

    Where minority rows merge, f is only quartic along the merging direction,
    so plain Newton converges linearly there; still a handful of steps take
    the gradient from L-BFGS's 1e-7 to round-off."""

    def evaluate(point):
        value, grad = problem.value_and_grad(backend.to_tensor(point))
        return float(backend.to_numpy(value)), backend.to_numpy(grad)

    value, grad = evaluate(x)
    best = (x, value, grad)
    for _ in range(steps):
        if np.abs(grad).max() <= 1e-15:
            break
        values, vectors = np.linalg.eigh(dense_hessian(problem, backend.to_tensor(x)))
        keep = values > 1e-9 * values.max()
        step = vectors[:, keep] @ ((vectors[:, keep].T @ grad) / values[keep])
        for _ in range(30):
            new_value, new_grad = evaluate(x - step)
            if new_value <= value + 4e-16 * abs(value):  # a few ulps of f
                break
            step = step / 2
        else:
            break
        x, value, grad = x - step, new_value, new_grad
        if np.abs(grad).max() < np.abs(best[2]).max():
            best = (x, value, grad)
    x, value, grad = best
    return x, value, float(np.abs(grad).max())


def _mean_pairwise_cosine(rows, everything):
    """Mean of cos(v_i, v_j) over the pairs i != j of `rows`; NaN where some
    v_i is 0 relative to the largest vector of `everything` (all classes):
    the cosine is undefined there."""
    norms = np.linalg.norm(rows, axis=1)
    scale = np.linalg.norm(everything, axis=1).max()
    if len(rows) < 2 or not np.all(norms > VANISHED_NORM * scale):
        return math.nan
    # The measurement's minority cosine, over all of `rows`.
    return formulas.minority_cosine(rows, np.arange(len(rows)))
