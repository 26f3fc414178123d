"""The neural-collapse metrics, one pure function each (Zhu et al. 2021, Sec. 4).

"Metrics for Measuring NC" (Sec. 4; details in Appendix B). With K classes,
class means mu_k over the class counts n_k, global mean mu_G of all N
features, centred class means Hbar = [mu_1 - mu_G, ..., mu_K - mu_G] (d x K),
the classifier W (K x d, the transpose of a Keras Dense kernel) and bias b:

    Sigma_W = (1/N) sum_k sum_i (h_ki - mu_k)(h_ki - mu_k)^T
    Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T = Hbar Hbar^T / K
    E       = (I_K - 11^T/K) / sqrt(K-1)     the simplex ETF of eq. (5),
                                              rescaled to unit Frobenius norm
    NC1 = (1/K) tr(Sigma_W Sigma_B^+)               within-class variability
    NC2 = || W W^T / ||W W^T||_F - E ||_F            classifier -> simplex ETF
    NC3 = || W Hbar / ||W Hbar||_F - E ||_F          self-duality W ~ Hbar^T
    NC4 = || b + W mu_G ||_2                         bias collapse

plus Papyan et al.'s nearest-class-centre agreement (`ncc_mismatches`), the
minority-collapse measures of imbalanced training (Fang et al. 2021:
`minority_accuracy`, `minority_cosine`) and a few extras. Every function takes the statistics (numpy float64 arrays:
counts, means, Sigma_W or its projections, W, b), never the samples
themselves, so the streaming and the in-memory measurements share them; a
new metric is one more function here. A 0/0 (e.g. W = 0 for NC2) is NaN
with a `RuntimeWarning`, never a silent number.
"""

import warnings

import numpy as np

__all__ = [
    "classifier_norm_cv",
    "centred_means",
    "etf_distance",
    "global_mean",
    "means_etf_error",
    "means_norm_cv",
    "minority_accuracy",
    "minority_cosine",
    "nc1",
    "nc2",
    "nc3",
    "nc4",
    "ncc_mismatches",
    "nearest_class_mean",
    "norm_cv",
    "per_class_accuracy",
    "projected_within",
    "rounding_level",
    "simplex_etf_gram",
    "trace_ratio",
]


# --- Class means -----------------------------------------------------------


def global_mean(counts, means):
    """mu_G = sum_k n_k mu_k / N, the mean of all features (d,)."""
    return counts @ means / counts.sum()


def centred_means(means, mu_G):
    """Hbar = [mu_1 - mu_G, ..., mu_K - mu_G], (d, K)."""
    return (means - mu_G).T


def rounding_level(means):
    """The round-off of Hbar: `pinv`'s relative cut-off times max_k ||mu_k||.

    Hbar is a difference of means, so its round-off is relative to the
    means' size: class means that are equal up to round-off must not pass
    for a tiny real spread (and give a huge NC1).
    """
    return _cutoff(means.shape) * np.linalg.norm(means, axis=1).max()


def _cutoff(shape):
    """numpy.linalg.pinv's relative singular-value cut-off for this shape."""
    return max(shape) * np.finfo(float).eps


# --- NC1 -------------------------------------------------------------------


def projected_within(sigma_w):
    """The function U -> diag(U^T Sigma_W U) that `nc1` needs, for a formed Sigma_W."""
    return lambda U: np.sum((sigma_w @ U) * U, axis=0)


def nc1(within, Hbar, tolerance=0.0):
    """NC1 = (1/K) tr(Sigma_W Sigma_B^+), with Sigma_B = Hbar Hbar^T / K (Sec. 4).

    Solved in the span of the centred means: with the thin SVD
    Hbar = U S V^T, Sigma_B^+ = K U S^-2 U^T, so
    NC1 = sum_j u_j^T Sigma_W u_j / s_j^2. Since sum_k n_k (mu_k - mu_G) = 0,
    Hbar has rank at most K-1: its K-th singular value is round-off and is
    dropped, as are those below numpy's pinv cut-off max(d, K) eps s_max, or
    below `tolerance` (e.g. `rounding_level`) when the means are degenerate.
    Inverting round-off singular values instead gives NC1 off by orders of
    magnitude.

    Args:
        within: Sigma_W (d, d), or a function U -> diag(U^T Sigma_W U) for
            orthonormal columns U (d, r), so that Sigma_W need not be formed.
        Hbar: (d, K) centred class means.
        tolerance: singular values of Hbar at or below it are dropped.
    """
    if not callable(within):
        within = projected_within(within)
    U, s, _ = np.linalg.svd(Hbar, full_matrices=False)
    rank = min(Hbar.shape[1] - 1, int(np.sum(s > max(_cutoff(Hbar.shape) * s[0], tolerance))))
    U, s = U[:, :rank], s[:rank]
    return float(within(U) @ (1.0 / s**2))


def trace_ratio(within_trace, Hbar):
    """tr(Sigma_W) / tr(Sigma_B), with tr(Sigma_B) = ||Hbar||_F^2 / K."""
    trace_b = float(np.sum(np.linalg.norm(Hbar, axis=0) ** 2)) / Hbar.shape[1]
    return within_trace / trace_b if trace_b > 0 else float("nan")


# --- Simplex ETF: NC2, NC3 ---------------------------------------------------


def simplex_etf_gram(num_classes):
    """E = (I_K - 11^T/K) / sqrt(K-1): eq. (5)'s Gram with unit Frobenius norm."""
    k = num_classes
    return (np.eye(k) - np.full((k, k), 1.0 / k)) / np.sqrt(k - 1)


def etf_distance(gram, what="the matrix"):
    """|| G / ||G||_F - E ||_F for a K x K `gram` (NaN, with a warning, for G = 0)."""
    norm = np.linalg.norm(gram)
    if not norm > 0:
        warnings.warn(f"{what} is zero: its ETF distance is 0/0, reported as NaN",
                      RuntimeWarning, stacklevel=3)
        return float("nan")
    return float(np.linalg.norm(gram / norm - simplex_etf_gram(gram.shape[0])))


def nc2(W):
    """NC2 = || W W^T / ||W W^T||_F - E ||_F: the classifier's distance to a simplex ETF."""
    return etf_distance(W @ W.T, "W W^T")


def nc3(W, Hbar):
    """NC3 = || W Hbar / ||W Hbar||_F - E ||_F: self-duality of W and the centred means."""
    return etf_distance(W @ Hbar, "W Hbar")


def means_etf_error(Hbar):
    """|| Hbar^T Hbar / ||Hbar^T Hbar||_F - E ||_F: NC2 for the centred class means."""
    return etf_distance(Hbar.T @ Hbar, "Hbar^T Hbar")


# --- NC4 and nearest class centre -------------------------------------------


def nc4(W, b, mu_G):
    """NC4 = || b + W mu_G ||_2: the bias cancels the global mean (Sec. 4)."""
    return float(np.linalg.norm(b + W @ mu_G))


def nearest_class_mean(features, class_means, products=None):
    """argmin_k ||h - mu_k|| for each row of `features` (N, d).

    Rows of NaN in `class_means` (classes never seen) are never nearest.
    `products`, features @ class_means^T (N, K), may be passed when already
    computed. argmin_k ||h - mu_k||^2 = argmin_k ||mu_k||^2 - 2 mu_k.h:
    dropping ||h||^2 avoids an (N, K, d) tensor.
    """
    products = features @ class_means.T if products is None else products
    distances = np.sum(class_means**2, axis=1) - 2.0 * products
    distances[:, ~np.isfinite(class_means).all(axis=1)] = np.inf
    return np.argmin(distances, axis=1)


def ncc_mismatches(predicted, features, class_means, products=None):
    """How many samples' prediction differs from their nearest class mean.

    Papyan et al.'s NC4 (not the paper's): a sample counts when
    argmax(W h + b) (`predicted`) != argmin_k ||h - mu_k||; the share of
    such samples is the `ncc_mismatch` metric.
    """
    return int((nearest_class_mean(features, class_means, products) != predicted).sum())


# --- Norm spread --------------------------------------------------------------


def norm_cv(vectors, axis):
    """Coefficient of variation (std / mean, population std) of the norms along `axis`."""
    norms = np.linalg.norm(vectors, axis=axis)
    mean = norms.mean()
    return float(norms.std() / mean) if mean > 0 else float("nan")


def means_norm_cv(Hbar):
    """Spread of ||mu_k - mu_G|| (0 when the centred means have equal norms)."""
    return norm_cv(Hbar, axis=0)


def classifier_norm_cv(W):
    """Spread of the classifier row norms ||w_k||."""
    return norm_cv(W, axis=1)


# --- Class imbalance: minority collapse ----------------------------------------


def per_class_accuracy(correct, counts):
    """acc_k = c_k / n_k: the share of class k's samples predicted as k (NaN if n_k = 0)."""
    correct, counts = np.asarray(correct, np.float64), np.asarray(counts, np.float64)
    accuracy = np.full(counts.shape, np.nan)
    np.divide(correct, counts, out=accuracy, where=counts > 0)
    return accuracy


def minority_accuracy(correct, counts, minority):
    """(1/|M|) sum_{k in M} c_k / n_k: the mean per-class accuracy of the minority classes M.

    With imbalanced training the classifier of the minority classes
    degrades first (Fang et al., PNAS 2021, "Exploring deep neural networks
    via layer-peeled model: minority collapse in imbalanced training"), so
    their accuracy, measured on a balanced test set, falls well below the
    majority's. Each class counts once whatever its n_k; classes of M with
    no sample are left out (NaN if none has one).
    """
    accuracy = per_class_accuracy(correct, counts)[np.asarray(minority, dtype=np.int64)]
    accuracy = accuracy[np.isfinite(accuracy)]
    return float(accuracy.mean()) if accuracy.size else float("nan")


def minority_cosine(W, minority):
    """(2 / (|M| (|M|-1))) sum_{k<l in M} cos(w_k, w_l): how alike the minority classifiers are.

    Minority collapse (Fang et al., PNAS 2021, Sec. "Minority collapse"): as
    the imbalance ratio grows, the classifier rows w_k of the minority
    classes M converge to one direction, so their mean pairwise cosine
    rises from -1/(K-1) (a simplex ETF) towards 1. NaN (with a warning) for
    |M| < 2 or a zero row.
    """
    rows = np.asarray(W, np.float64)[np.asarray(minority, dtype=np.int64)]
    norms = np.linalg.norm(rows, axis=1)
    if rows.shape[0] < 2 or not (norms > 0).all():
        warnings.warn("minority_cosine needs two or more nonzero classifier rows: NaN",
                      RuntimeWarning, stacklevel=2)
        return float("nan")
    unit = rows / norms[:, None]
    upper = np.triu_indices(rows.shape[0], k=1)
    return float((unit @ unit.T)[upper].mean())
