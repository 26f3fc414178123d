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
`minority_accuracy`, `minority_cosine`), and the measures the literature added since, with the directions
m_k = (mu_k - mu_G) / ||mu_k - mu_G|| and the class variances
sigma_k^2 = (1/n_k) sum_i ||h_ki - mu_k||^2:

    trace_ratio       tr(Sigma_W) / tr(Sigma_B)         (NC1 as a quotient of
                      traces; this *is* the "nc1_quotient" of later papers,
                      so it has no second name)
    cdnv              mean_{k<l} (sigma_k^2 + sigma_l^2) / (2 ||mu_k - mu_l||^2)
                                                        (Galanti et al. 2022)
    means_cos_std     std_{k!=l} m_k.m_l                (Papyan et al. 2020)
    means_cos_max_gap max_{k!=l} |m_k.m_l + 1/(K-1)|    (Papyan et al. 2020)
    gnc2              mean_{k<l} log(1 / ||m_k - m_l||) (Liu et al. 2023)
    unc3              CV_k of cos(w_k, mu_k - mu_G)     (Wu & Papyan 2024)
    nc3_papyan        || W^T/||W||_F - Hbar/||Hbar||_F ||_F   (Papyan et al. 2020)

Every function takes the statistics (numpy float64 arrays: counts, means,
Sigma_W or its projections, class variances, W, b), never the samples
themselves, so the streaming and the in-memory measurements share them; a
new metric is one more function here. Those that are invariant to the scale
of W or of the means (all but NC4) divide by the largest entry before any
product, so W x 1e160 or means x 1e-160 give the same number instead of
inf/inf. A 0/0 (e.g. W = 0 for NC2) is NaN with a `RuntimeWarning`, never a
silent number.
"""

import warnings

import numpy as np

__all__ = [
    "cdnv",
    "centred_means",
    "classifier_means_cosines",
    "classifier_norm_cv",
    "etf_distance",
    "etf_exists",
    "global_mean",
    "gnc2",
    "gnc2_minimum",
    "means_cos_max_gap",
    "means_cos_std",
    "means_cosines",
    "means_etf_error",
    "means_norm_cv",
    "minority_accuracy",
    "minority_cosine",
    "nc1",
    "nc2",
    "nc3",
    "nc3_papyan",
    "nc4",
    "ncc_mismatches",
    "nearest_class_mean",
    "norm_cv",
    "per_class_accuracy",
    "projected_within",
    "rescaled",
    "rounding_level",
    "simplex_etf_cosines",
    "simplex_etf_gram",
    "trace_ratio",
    "unc3",
    "unit_rows",
]


# --- Scaling ------------------------------------------------------------------


def rescaled(matrix):
    """`matrix` divided by its largest absolute entry (unchanged if 0 or not finite).

    For metrics invariant to the scale of their input: squares and products
    of the rescaled entries neither overflow (W x 1e160) nor underflow
    (features x 1e-160). Dividing by a power of two would be exact, but the
    metrics normalize afterwards anyway, so any positive factor will do.
    """
    largest = np.max(np.abs(matrix)) if matrix.size else 0.0
    return matrix / largest if np.isfinite(largest) and largest > 0 else matrix


def unit_rows(matrix):
    """Rows of `matrix` over their Euclidean norms (NaN rows where a norm is 0)."""
    matrix = rescaled(matrix)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return matrix / norms


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
    magnitude. Sigma_W and Hbar must be in the same units (the caller scales
    both, see `nc_keras.collapse.statistics`).

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
    """tr(Sigma_W) / tr(Sigma_B), with tr(Sigma_B) = ||Hbar||_F^2 / K.

    NC1 with traces instead of the pseudo-inverse; later papers call it
    the "NC1 quotient", which is therefore not a second key.
    """
    trace_b = float(np.sum(np.linalg.norm(Hbar, axis=0) ** 2)) / Hbar.shape[1]
    return within_trace / trace_b if trace_b > 0 else float("nan")


def cdnv(Hbar, class_variances):
    """Class-distance normalized variance (Galanti, Gyorgy & Hutter, ICLR 2022).

        CDNV = mean over pairs k < l of (sigma_k^2 + sigma_l^2) / (2 ||mu_k - mu_l||^2)

    with sigma_k^2 = (1/n_k) sum_i ||h_ki - mu_k||^2 (`class_variances`, (K,)),
    averaged over the K(K-1)/2 pairs. It goes to 0 under NC1 and, unlike
    NC1, needs no pseudo-inverse, so it is defined for any K and d.
    ||mu_k - mu_l||^2 comes from the Gram matrix of the centred means
    (`Hbar`, (d, K)): its round-off is eps (||mu_k - mu_G||^2 + ||mu_l - mu_G||^2),
    small next to well-separated means. Means and variances must be in the
    same units. A pair of equal means gives inf.
    """
    gram = Hbar.T @ Hbar
    squared = np.diag(gram)
    upper = np.triu_indices(gram.shape[0], 1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * gram, 0.0)[upper]
    variances = (class_variances[:, None] + class_variances[None, :])[upper]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(variances / (2.0 * distances)))


# --- Simplex ETF: NC2, NC3 ---------------------------------------------------


def etf_exists(num_classes, dim):
    """Whether K unit vectors in R^d can form a simplex ETF: d >= K - 1."""
    return dim >= num_classes - 1


def simplex_etf_cosines(num_classes):
    """The cosines between the K vectors of a simplex ETF: 1 and -1/(K-1)."""
    k = num_classes
    return (k * np.eye(k) - np.ones((k, k))) / (k - 1)


def simplex_etf_gram(num_classes):
    """E = (I_K - 11^T/K) / sqrt(K-1): eq. (5)'s Gram with unit Frobenius norm."""
    k = num_classes
    return (np.eye(k) - np.full((k, k), 1.0 / k)) / np.sqrt(k - 1)


def etf_distance(gram, what="the matrix"):
    """|| G / ||G||_F - E ||_F for a K x K `gram` (NaN, with a warning, for G = 0)."""
    gram = rescaled(gram)
    norm = np.linalg.norm(gram)
    if not norm > 0:
        warnings.warn(f"{what} is zero: its ETF distance is 0/0, reported as NaN",
                      RuntimeWarning, stacklevel=3)
        return float("nan")
    return float(np.linalg.norm(gram / norm - simplex_etf_gram(gram.shape[0])))


def nc2(W):
    """NC2 = || W W^T / ||W W^T||_F - E ||_F: the classifier's distance to a simplex ETF."""
    W = rescaled(W)
    return etf_distance(W @ W.T, "W W^T")


def nc3(W, Hbar):
    """NC3 = || W Hbar / ||W Hbar||_F - E ||_F: self-duality of W and the centred means."""
    return etf_distance(rescaled(W) @ rescaled(Hbar), "W Hbar")


def nc3_papyan(W, Hbar):
    """Papyan et al.'s NC3 (PNAS 2020, Fig. 5): || W^T/||W||_F - Hbar/||Hbar||_F ||_F.

    Self-duality as the distance between the normalized classifier and the
    normalized centred means Hbar = [mu_1 - mu_G, ..., mu_K - mu_G]
    (d, K), column k against w_k; 0 when w_k = c (mu_k - mu_G) for one c > 0.
    The paper's `nc3` compares W Hbar with the simplex ETF instead, and so
    also requires the ETF geometry.
    """
    W, Hbar = rescaled(W), rescaled(Hbar)
    norms = np.linalg.norm(W), np.linalg.norm(Hbar)
    if not min(norms) > 0:
        warnings.warn(f"{'W' if not norms[0] > 0 else 'Hbar'} is zero: Papyan's NC3 "
                      "is 0/0, reported as NaN", RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(np.linalg.norm(W.T / norms[0] - Hbar / norms[1]))


def means_etf_error(Hbar):
    """|| Hbar^T Hbar / ||Hbar^T Hbar||_F - E ||_F: NC2 for the centred class means."""
    Hbar = rescaled(Hbar)
    return etf_distance(Hbar.T @ Hbar, "Hbar^T Hbar")


# --- Angles between the centred class means ------------------------------------


def means_cosines(Hbar):
    """The K x K cosines m_k . m_l, m_k = (mu_k - mu_G)/||mu_k - mu_G|| (columns of Hbar).

    A simplex ETF has 1 on the diagonal and -1/(K-1) off it.
    """
    directions = unit_rows(Hbar.T)
    return directions @ directions.T


def _off_diagonal(matrix):
    return matrix[~np.eye(matrix.shape[0], dtype=bool)]


def means_cos_std(Hbar):
    """Population std of the cosines m_k . m_l over k != l (Papyan et al., PNAS 2020, Fig. 3).

    Equiangularity of the centred class means: 0 when all angles are equal,
    whether or not they are the simplex ETF's (see `means_cos_max_gap`).
    """
    return float(np.std(_off_diagonal(means_cosines(Hbar))))


def means_cos_max_gap(Hbar):
    """max over k != l of |m_k . m_l + 1/(K-1)|: distance to maximal angles.

    The largest distance of a cosine from the simplex ETF's -1/(K-1)
    (Papyan et al., PNAS 2020, plot the average of the same quantity,
    Fig. 4); 0 is only attainable when d >= K-1.
    """
    K = Hbar.shape[1]
    return float(np.max(np.abs(_off_diagonal(means_cosines(Hbar)) + 1.0 / (K - 1))))


def gnc2_minimum(num_classes):
    """-1/2 log(2K/(K-1)): the smallest `gnc2` of K unit vectors (simplex ETF)."""
    k = num_classes
    return -0.5 * np.log(2.0 * k / (k - 1))


def gnc2(Hbar):
    """Hyperspherical uniformity with the log kernel (Liu et al., ICLR 2023, GNC2).

        GNC2 = mean over pairs k < l of log(1 / ||m_k - m_l||)

    for the directions m_k of the centred class means. Its minimum over unit
    vectors is `gnc2_minimum(K)` = -1/2 log(2K/(K-1)), reached exactly by a
    simplex ETF: sum_{k<l} ||m_k - m_l||^2 = K^2 - ||sum_k m_k||^2 <= K^2,
    so by Jensen mean log ||m_k - m_l|| <= 1/2 log(2K/(K-1)), with equality
    iff all distances are equal and sum_k m_k = 0. It needs no ETF to exist
    (K > d + 1 gives a number, above that bound). Distances come from the
    cosines, ||m_k - m_l||^2 = 2 - 2 m_k.m_l; two equal directions give inf.
    """
    cosines = means_cosines(Hbar)
    squared = np.maximum(2.0 - 2.0 * cosines[np.triu_indices(cosines.shape[0], 1)], 0.0)
    with np.errstate(divide="ignore"):
        return float(np.mean(-0.5 * np.log(squared)))


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


# --- Norm spread and duality per class ---------------------------------------------


def _cv(values):
    """Coefficient of variation: population std / |mean| (NaN for mean 0)."""
    mean = values.mean()
    return float(values.std() / abs(mean)) if mean != 0 else float("nan")


def norm_cv(vectors, axis):
    """Coefficient of variation (std / mean, population std) of the norms along `axis`."""
    return _cv(np.linalg.norm(rescaled(vectors), axis=axis))


def means_norm_cv(Hbar):
    """Spread of ||mu_k - mu_G|| (0 when the centred means have equal norms)."""
    return norm_cv(Hbar, axis=0)


def classifier_norm_cv(W):
    """Spread of the classifier row norms ||w_k||."""
    return norm_cv(W, axis=1)


def unc3(W, Hbar):
    """Uniform duality (Wu & Papyan, 2024, "UNC3"): CV over k of cos(w_k, mu_k - mu_G).

    Coefficient of variation (population std / |mean|) of the K cosines
    between each classifier row and its centred class mean: 0 when every
    class is aligned with its classifier equally well, whatever the angle,
    and whatever K and d. NaN when the mean cosine is 0 or a w_k is 0.
    """
    return _cv(np.diag(classifier_means_cosines(W, Hbar)))


def classifier_means_cosines(W, Hbar):
    """The K x K cosines cos(w_k, mu_l - mu_G): self-duality (NC3) makes it
    the simplex ETF's cosine matrix (1 on the diagonal, -1/(K-1) off it)."""
    return unit_rows(W) @ unit_rows(Hbar.T).T


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
