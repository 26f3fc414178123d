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

plus Papyan et al.'s nearest-class-centre agreement (`ncc_mismatches`) and
accuracy (`ncc_correct`), the
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

the depth measures, with Sigma_T = Sigma_W + (1/N) sum_k n_k (mu_k - mu_G)(mu_k - mu_G)^T
the covariance of the centred features and lambda_1 >= ... >= lambda_d its
eigenvalues (its singular values: it is symmetric positive semi-definite):

    ncc_accuracy      share of samples with argmin_k ||h - mu_k|| = label
                      (Galanti et al. 2022; Rangamani et al., ICML 2023)
    numerical_rank    #{i : lambda_i > RANK_RTOL lambda_1}, RANK_RTOL = 1e-3
                      (Masarczyk et al., NeurIPS 2023, "The tunnel effect")
    effective_rank    exp(-sum_i p_i log p_i), p_i = lambda_i / sum_j lambda_j
                      (Roy & Vetterli 2007, the entropy effective rank)

and, against out-of-distribution (OOD) data with mean mu_OOD of its
features (Ammar et al., ICLR 2024, "NECO", their NC5 and score):

    nc5               mean_k |<mu_k, mu_OOD>| / (||mu_k|| ||mu_OOD||)
    neco_score(h)     ||P h|| / ||h||, P the projection on the first d'
                      principal directions of the in-distribution features

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

from nc_keras.collapse import tiles
from nc_keras.collapse.tiles import Rows, as_rows

__all__ = [
    "cdnv",
    "centred_means",
    "classifier_means_cosines",
    "classifier_norm_cv",
    "classifier_predictions",
    "etf_distance",
    "etf_exists",
    "global_mean",
    "gnc2",
    "gnc2_minimum",
    "largest_entry",
    "left_singular_vectors",
    "means_cos_max_gap",
    "means_cos_std",
    "means_cosines",
    "means_etf_error",
    "means_norm_cv",
    "means_pair_metrics",
    "minority_accuracy",
    "minority_cosine",
    "nc1",
    "nc2",
    "nc3",
    "nc3_papyan",
    "auroc",
    "covariance_eigenvalues",
    "total_covariance",
    "effective_rank",
    "nc4",
    "nc5",
    "ncc_correct",
    "ncc_mismatches",
    "neco_score",
    "numerical_rank",
    "nearest_class_mean",
    "norm_cv",
    "per_class_accuracy",
    "projected_within",
    "rescaled",
    "rounding_level",
    "row_norms",
    "simplex_etf_cosines",
    "simplex_etf_gram",
    "trace_ratio",
    "unc3",
    "unit_rows",
]

# The metrics of pairs of centred class means that `means_pair_metrics`
# computes in one sweep of tiles.
PAIR_KEYS = ("cdnv", "gnc2", "means_cos_std", "means_cos_max_gap")

# `numerical_rank`'s threshold, relative to the largest eigenvalue of the
# covariance: numpy's matrix_rank cut-off (d eps) counts directions that
# hold 1e-12 of the variance, which float32 features fill with round-off.
RANK_RTOL = 1e-3


# --- Scaling and rows ---------------------------------------------------------


def largest_entry(matrix):
    """max |entry| of an array or `Rows` (NaN when an entry is NaN; 0 when empty)."""
    if isinstance(matrix, np.ndarray):
        return float(np.max(np.abs(matrix))) if matrix.size else 0.0
    largest = 0.0
    for _, tile in matrix.tiles():
        if tile.size:
            largest = np.maximum(largest, np.max(np.abs(tile)))  # NaN propagates
    return float(largest)


def rescaled(matrix):
    """`matrix` divided by its largest absolute entry (unchanged if 0 or not finite).

    For metrics invariant to the scale of their input: squares and products
    of the rescaled entries neither overflow (W x 1e160) nor underflow
    (features x 1e-160). Dividing by a power of two would be exact, but the
    metrics normalize afterwards anyway, so any positive factor will do.
    `Rows` come back as `Rows` (rescaled tile by tile when read).
    """
    largest = largest_entry(matrix)
    if not (np.isfinite(largest) and largest > 0):
        return matrix
    return matrix.rescaled(largest) if isinstance(matrix, Rows) else matrix / largest


def unit_rows(matrix):
    """Rows of `matrix` over their Euclidean norms (NaN rows where a norm is 0)."""
    matrix = rescaled(matrix)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return matrix / norms


def row_norms(matrix):
    """(n,) Euclidean norms of the rows of an (n, d) array or `Rows`, tile by tile."""
    rows = as_rows(matrix)
    norms = np.empty(len(rows))
    for start, tile in rows.tiles():
        norms[start:start + len(tile)] = np.linalg.norm(tile, axis=1)
    return norms


def _columns(Hbar):
    """The centred means as rows (K, d): Hbar's columns, or `Rows` as given."""
    return as_rows(Hbar, columns=True)


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
    for a tiny real spread (and give a huge NC1). `means`: (K, d) array or
    `Rows`.
    """
    return _cutoff(means.shape) * row_norms(means).max()


def _cutoff(shape):
    """numpy.linalg.pinv's relative singular-value cut-off for this shape."""
    return max(shape) * np.finfo(float).eps


# --- NC1 -------------------------------------------------------------------


def projected_within(sigma_w):
    """The function U -> diag(U^T Sigma_W U) that `nc1` needs, for a formed Sigma_W."""
    return lambda U: np.sum((sigma_w @ U) * U, axis=0)


def left_singular_vectors(Hbar):
    """(U, s): the thin SVD Hbar = U S V^T's U (d, r) and s (r,), r = min(d, K).

    V (K x r) is never formed. With more classes than dimensions, Hbar^T
    (K, d) is first reduced to the triangular factor R of its QR
    factorization, tile by tile when it is larger than the tile budget (a
    tall-skinny QR: R of [R; next tile] at each step); Hbar = R^T Q^T with
    orthonormal Q, so Hbar's singular values and left singular vectors are
    those of R^T, to the backward stability of Householder QR, the accuracy
    of the SVD of Hbar itself, at a fraction of its cost.
    """
    rows = _columns(Hbar)
    K, d = rows.shape
    if K <= d:
        U, s, _ = np.linalg.svd(rows[0:K].T, full_matrices=False)
        return U, s
    R = None
    # A tile, [R; tile] and QR's own copy of it at once.
    for _, tile in rows.tiles(size=max(d, tiles.row_tile_size(K, d, arrays=6))):
        R = np.linalg.qr(tile if R is None else np.vstack([R, tile]), mode="r")
    U, s, _ = np.linalg.svd(R.T, full_matrices=False)
    return U, s


def nc1(within, Hbar, tolerance=0.0, svd=None):
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
        Hbar: (d, K) centred class means, or their `Rows` (K, d) (many
            classes: see `left_singular_vectors`).
        tolerance: singular values of Hbar at or below it are dropped.
        svd: `left_singular_vectors(Hbar)`, when already computed.
    """
    if not callable(within):
        within = projected_within(within)
    shape = _columns(Hbar).shape
    U, s = left_singular_vectors(Hbar) if svd is None else svd
    rank = min(shape[0] - 1, int(np.sum(s > max(_cutoff(shape) * s[0], tolerance))))
    U, s = U[:, :rank], s[:rank]
    return float(within(U) @ (1.0 / s**2))


def trace_ratio(within_trace, Hbar):
    """tr(Sigma_W) / tr(Sigma_B), with tr(Sigma_B) = ||Hbar||_F^2 / K.

    NC1 with traces instead of the pseudo-inverse; later papers call it
    the "NC1 quotient", which is therefore not a second key.
    """
    norms = row_norms(_columns(Hbar))
    trace_b = float(np.sum(norms**2)) / norms.shape[0]
    return within_trace / trace_b if trace_b > 0 else float("nan")


# --- Pairs of classes, tile by tile -------------------------------------------


def _pair_blocks(rows_a, rows_b=None):
    """Yields (i, j, A_i B_j^T) over square tiles of the K x K products.

    Without `rows_b`, the symmetric A A^T: only tiles with j >= i (the
    diagonal tiles whole). With it, every tile of A B^T.
    """
    K, d = rows_a.shape
    size = tiles.pair_tile_size(K, d)
    for i in range(0, K, size):
        A = rows_a[i:i + size]
        for j in range(i if rows_b is None else 0, K, size):
            if rows_b is None:
                B = A if j == i else rows_a[j:j + size]
            else:
                B = rows_b[j:j + size]
            yield i, j, A @ B.T


def means_pair_metrics(Hbar, class_variances=None, keys=PAIR_KEYS):
    """`PAIR_KEYS` metrics of the centred class means, from one sweep of tiles.

    Every metric over pairs k < l of classes (`cdnv`, `gnc2`,
    `means_cos_std`, `means_cos_max_gap`) reads the Gram block of a tile
    of pairs; one sweep over the K(K+1)/2 entries of Hbar^T Hbar (tiles of
    at most `nc_keras.collapse.tile_budget` bytes) gives all those asked
    for, so memory is O(Kd) whatever K. The mean cosine that
    `means_cos_std` centres on comes in closed form,
    sum_{k != l} m_k.m_l = ||sum_k m_k||^2 - K, before the sweep, which then
    sums squared deviations (as a two-pass standard deviation does: no
    cancellation when the cosines are nearly equal).

    Args:
        Hbar: (d, K) centred class means, or their `Rows` (K, d).
        class_variances: (K,) sigma_k^2, in Hbar's units (for `cdnv`).
        keys: which of `PAIR_KEYS`.
    Returns:
        {key: float}.
    """
    unknown = set(keys) - set(PAIR_KEYS)
    if unknown:
        raise ValueError(f"unknown pair metrics {sorted(unknown)}; known: {PAIR_KEYS}")
    rows = _columns(Hbar)
    K = len(rows)
    largest = largest_entry(rows)
    if np.isfinite(largest) and largest > 0:
        rows = rows.rescaled(largest)
        if class_variances is not None:
            class_variances = np.asarray(class_variances, np.float64) / largest**2
    squared = row_norms(rows) ** 2
    norms = np.sqrt(squared)
    sums = dict.fromkeys(keys, 0.0)
    mean_cos = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if "means_cos_std" in keys:
            unit_sum = np.zeros(rows.shape[1])
            for start, tile in rows.tiles():
                unit_sum += (tile / norms[start:start + len(tile), None]).sum(axis=0)
            mean_cos = (unit_sum @ unit_sum - K) / (K * (K - 1))
        for i, j, gram in _pair_blocks(rows):
            rows_i, rows_j = slice(i, i + gram.shape[0]), slice(j, j + gram.shape[1])
            # Every term is symmetric in (k, l): a diagonal tile counts each
            # pair twice, and its diagonal (k = l) not at all.
            if i == j:
                weight = 0.5

                def pairs(values):
                    np.fill_diagonal(values, 0.0)
                    return values
            else:
                weight, pairs = 1.0, None
            if "cdnv" in keys:
                distances = squared[rows_i, None] + squared[None, rows_j]
                distances -= 2.0 * gram
                spreads = class_variances[rows_i, None] + class_variances[None, rows_j]
                # Equal means are inseparable: inf, also with zero spreads (0/0).
                ratios = np.divide(spreads, 2.0 * distances, out=np.full_like(spreads, np.inf),
                                   where=distances > 0)
                sums["cdnv"] += weight * np.sum(pairs(ratios) if pairs else ratios)
            if keys == ("cdnv",):
                continue
            cosines = gram / norms[rows_i, None]
            cosines /= norms[None, rows_j]
            if "gnc2" in keys:
                terms = np.maximum(2.0 - 2.0 * cosines, 0.0)
                np.log(terms, out=terms)
                sums["gnc2"] += -0.5 * weight * np.sum(pairs(terms) if pairs else terms)
            if "means_cos_std" in keys:
                terms = (cosines - mean_cos) ** 2
                sums["means_cos_std"] += weight * np.sum(pairs(terms) if pairs else terms)
            if "means_cos_max_gap" in keys and cosines.size:
                gaps = np.abs(cosines + 1.0 / (K - 1))
                sums["means_cos_max_gap"] = np.maximum(
                    sums["means_cos_max_gap"], np.max(pairs(gaps) if pairs else gaps))
    num_pairs = K * (K - 1) / 2
    out = {}
    for key in keys:
        if key == "means_cos_max_gap":
            out[key] = float(sums[key])
        elif key == "means_cos_std":
            out[key] = float(np.sqrt(sums[key] / num_pairs))
        else:
            out[key] = float(sums[key] / num_pairs)
    return out


def cdnv(Hbar, class_variances):
    """Class-distance normalized variance (Galanti, Gyorgy & Hutter, ICLR 2022).

        CDNV = mean over pairs k < l of (sigma_k^2 + sigma_l^2) / (2 ||mu_k - mu_l||^2)

    with sigma_k^2 = (1/n_k) sum_i ||h_ki - mu_k||^2 (`class_variances`, (K,)),
    averaged over the K(K-1)/2 pairs. It goes to 0 under NC1 and, unlike
    NC1, needs no pseudo-inverse, so it is defined for any K and d.
    ||mu_k - mu_l||^2 comes from the Gram matrix of the centred means
    (`Hbar`, (d, K), or its `Rows`), tile by tile: its round-off is
    eps (||mu_k - mu_G||^2 + ||mu_l - mu_G||^2), small next to well-separated
    means. Means and variances must be in the same units. A pair of equal
    means gives inf.
    """
    return means_pair_metrics(Hbar, class_variances, ("cdnv",))["cdnv"]


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


def _small_gram(rows):
    """A^T A (d, d), tile by tile."""
    gram = np.zeros((rows.shape[1], rows.shape[1]))
    for _, tile in rows.tiles():
        gram += tile.T @ tile
    return gram


def _product_norm(rows_a, rows_b=None):
    """||A B^T||_F (or ||A A^T||_F) for K x d rows, without the K x K product.

    With K > d, from d x d Grams: ||A B^T||_F^2 = <A^T A, B^T B>_F; with
    K <= d, tile by tile (the K x K tiles are then the smaller).
    """
    K, d = rows_a.shape
    if K <= d:
        total = 0.0
        for i, j, gram in _pair_blocks(rows_a, rows_b):
            total += (2.0 if rows_b is None and i != j else 1.0) * np.sum(gram**2)
        return np.sqrt(total)
    gram_a = _small_gram(rows_a)
    gram_b = gram_a if rows_b is None else _small_gram(rows_b)
    return np.sqrt(max(float(np.sum(gram_a * gram_b)), 0.0))


def _product_etf_distance(rows_a, rows_b=None, what="the matrix"):
    """|| G / ||G||_F - E ||_F for G = A B^T (or A A^T), tile by tile.

    The norm first (`_product_norm`), then one sweep sums the squared
    deviations from E directly (no cancellation near E).
    """
    K = len(rows_a)
    norm = _product_norm(rows_a, rows_b)
    if not norm > 0:
        warnings.warn(f"{what} is zero: its ETF distance is 0/0, reported as NaN",
                      RuntimeWarning, stacklevel=3)
        return float("nan")
    off = -1.0 / (K * np.sqrt(K - 1))
    on = (1.0 - 1.0 / K) / np.sqrt(K - 1)
    total = 0.0
    for i, j, gram in _pair_blocks(rows_a, rows_b):
        deviation = gram / norm - off
        if i == j:
            np.einsum("ii->i", deviation)[:] += off - on
        twice = rows_b is None and i != j  # the tile below the diagonal too
        total += (2.0 if twice else 1.0) * np.sum(deviation**2)
    return float(np.sqrt(total))


def nc2(W):
    """NC2 = || W W^T / ||W W^T||_F - E ||_F: the classifier's distance to a simplex ETF.

    `W`: (K, d), or its `Rows`; computed tile by tile.
    """
    return _product_etf_distance(rescaled(as_rows(W)), what="W W^T")


def nc3(W, Hbar):
    """NC3 = || W Hbar / ||W Hbar||_F - E ||_F: self-duality of W and the centred means."""
    return _product_etf_distance(rescaled(as_rows(W)), rescaled(_columns(Hbar)), "W Hbar")


def nc3_papyan(W, Hbar):
    """Papyan et al.'s NC3 (PNAS 2020, Fig. 5): || W^T/||W||_F - Hbar/||Hbar||_F ||_F.

    Self-duality as the distance between the normalized classifier and the
    normalized centred means Hbar = [mu_1 - mu_G, ..., mu_K - mu_G]
    (d, K), column k against w_k; 0 when w_k = c (mu_k - mu_G) for one c > 0.
    The paper's `nc3` compares W Hbar with the simplex ETF instead, and so
    also requires the ETF geometry.
    """
    W, Hbar = rescaled(as_rows(W)), rescaled(_columns(Hbar))
    norms = np.linalg.norm(row_norms(W)), np.linalg.norm(row_norms(Hbar))
    if not min(norms) > 0:
        warnings.warn(f"{'W' if not norms[0] > 0 else 'Hbar'} is zero: Papyan's NC3 "
                      "is 0/0, reported as NaN", RuntimeWarning, stacklevel=2)
        return float("nan")
    total = 0.0
    for start, tile in W.tiles(arrays=8):
        total += np.sum((tile / norms[0] - Hbar[start:start + len(tile)] / norms[1]) ** 2)
    return float(np.sqrt(total))


def means_etf_error(Hbar):
    """|| Hbar^T Hbar / ||Hbar^T Hbar||_F - E ||_F: NC2 for the centred class means."""
    return _product_etf_distance(rescaled(_columns(Hbar)), what="Hbar^T Hbar")


# --- Angles between the centred class means ------------------------------------


def means_cosines(Hbar):
    """The K x K cosines m_k . m_l, m_k = (mu_k - mu_G)/||mu_k - mu_G|| (columns of Hbar).

    A simplex ETF has 1 on the diagonal and -1/(K-1) off it. This forms the
    K x K matrix (for pictures of a few classes); the metrics that read it
    (`means_cos_std`, `means_cos_max_gap`, `gnc2`) go tile by tile.
    """
    directions = unit_rows(Hbar.T)
    return directions @ directions.T


def means_cos_std(Hbar):
    """Population std of the cosines m_k . m_l over k != l (Papyan et al., PNAS 2020, Fig. 3).

    Equiangularity of the centred class means: 0 when all angles are equal,
    whether or not they are the simplex ETF's (see `means_cos_max_gap`).
    """
    return means_pair_metrics(Hbar, keys=("means_cos_std",))["means_cos_std"]


def means_cos_max_gap(Hbar):
    """max over k != l of |m_k . m_l + 1/(K-1)|: distance to maximal angles.

    The largest distance of a cosine from the simplex ETF's -1/(K-1)
    (Papyan et al., PNAS 2020, plot the average of the same quantity,
    Fig. 4); 0 is only attainable when d >= K-1.
    """
    return means_pair_metrics(Hbar, keys=("means_cos_max_gap",))["means_cos_max_gap"]


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
    return means_pair_metrics(Hbar, keys=("gnc2",))["gnc2"]


# --- NC4 and nearest class centre -------------------------------------------


def nc4(W, b, mu_G):
    """NC4 = || b + W mu_G ||_2: the bias cancels the global mean (Sec. 4)."""
    rows = as_rows(W)
    total = np.array(b, dtype=np.float64, copy=True)
    for start, tile in rows.tiles():
        total[start:start + len(tile)] += tile @ mu_G
    return float(np.linalg.norm(total))


def _best_class(features, vectors, offsets, coefficient):
    """argmin_k offsets_k - coefficient h.v_k for each row h, over tiles of rows and classes.

    Ties go to the smallest k, as np.argmin over the whole row does. At
    most a tile budget of scores exists at once, whatever N and K.
    """
    features = np.asarray(features)
    N, K = features.shape[0], vectors.shape[0]
    classes = tiles.pair_tile_size(K, vectors.shape[1])
    rows = tiles.row_tile_size(N, classes, arrays=3)
    best = np.zeros(N, dtype=np.int64)
    for r in range(0, N, rows):
        h = features[r:r + rows]
        lowest = np.full(h.shape[0], np.inf)
        for c in range(0, K, classes):
            scores = offsets[c:c + classes] - coefficient * (h @ vectors[c:c + classes].T)
            scores[np.isnan(scores)] = np.inf
            k = np.argmin(scores, axis=1)
            value = scores[np.arange(h.shape[0]), k]
            better = value < lowest
            if c == 0:
                better |= ~np.isfinite(lowest)
            best[r:r + rows][better] = c + k[better]
            lowest[better] = value[better]
    return best


def classifier_predictions(features, W, b=None):
    """argmax_k (W h + b)_k for each row of `features` (N, d), in tiles of classes.

    Equal to np.argmax(features @ W.T + b, axis=1) without the (N, K)
    logits (20 GB at N = K = 50,000 in float64).
    """
    W = np.asarray(W)
    offsets = np.zeros(W.shape[0]) if b is None else -np.asarray(b, dtype=np.float64)
    return _best_class(features, W, offsets, 1.0)


def nearest_class_mean(features, class_means, products=None):
    """argmin_k ||h - mu_k|| for each row of `features` (N, d).

    Rows of NaN in `class_means` (classes never seen) are never nearest.
    `products`, features @ class_means^T (N, K), may be passed when already
    computed. argmin_k ||h - mu_k||^2 = argmin_k ||mu_k||^2 - 2 mu_k.h:
    dropping ||h||^2 avoids an (N, K, d) tensor; without `products` the
    distances are formed in tiles of rows and classes.
    """
    if products is None:
        squared = np.sum(class_means**2, axis=1)
        squared[~np.isfinite(class_means).all(axis=1)] = np.nan  # never nearest
        return _best_class(features, class_means, squared, 2.0)
    distances = np.sum(class_means**2, axis=1) - 2.0 * products
    distances[:, ~np.isfinite(class_means).all(axis=1)] = np.inf
    return np.argmin(distances, axis=1)


def ncc_correct(labels, features, class_means):
    """How many samples' nearest class mean argmin_k ||h - mu_k|| is their label.

    The share of such samples is `ncc_accuracy`: the accuracy of the
    nearest-class-centre classifier on these features (Galanti et al.,
    ICLR 2022, "On the role of neural collapse in transfer learning";
    Rangamani et al., ICML 2023, measure it at every layer). Tiled over
    samples and classes (`nearest_class_mean`): no (N, K) array.
    rhubarbwu's neural-collapse package counts the agreement of the NCC and
    the linear classifier instead (`clf_ncc_agreement`, 1 - our
    `ncc_mismatch`), not this accuracy against the labels.
    """
    return int((nearest_class_mean(features, class_means) == np.asarray(labels)).sum())


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
    return _cv(row_norms(rescaled(as_rows(vectors, columns=(axis == 0)))))


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
    W, Hbar = rescaled(as_rows(W)), rescaled(_columns(Hbar))
    cosines = np.empty(len(W))
    with np.errstate(invalid="ignore", divide="ignore"):
        for start, tile in W.tiles(arrays=8):
            means = Hbar[start:start + len(tile)]
            cosines[start:start + len(tile)] = np.einsum("ij,ij->i", tile, means) / (
                np.linalg.norm(tile, axis=1) * np.linalg.norm(means, axis=1))
    return _cv(cosines)


def classifier_means_cosines(W, Hbar):
    """The K x K cosines cos(w_k, mu_l - mu_G): self-duality (NC3) makes it
    the simplex ETF's cosine matrix (1 on the diagonal, -1/(K-1) off it).
    Forms the K x K matrix (for pictures of a few classes)."""
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


# --- Depth: rank of the features ------------------------------------------------


def total_covariance(within_scatter, counts, Hbar):
    """Sigma_T = (S + sum_k n_k (mu_k - mu_G)(mu_k - mu_G)^T) / N (d, d).

    The covariance of the features centred on their global mean: the
    within-class scatter S (d, d) plus the between-class scatter of the
    centred means `Hbar` ((d, K), or their `Rows` (K, d)) weighted by the
    class counts n_k, read tile by tile. S and Hbar in the same units; no
    pass over the samples.
    """
    rows = _columns(Hbar)
    counts = np.asarray(counts, np.float64)
    total = np.array(within_scatter, dtype=np.float64, copy=True)
    for start, tile in rows.tiles():
        weighted = tile * np.sqrt(counts[start:start + len(tile)])[:, None]
        total += weighted.T @ weighted
    total /= counts.sum()
    return (total + total.T) / 2


def covariance_eigenvalues(covariance):
    """The eigenvalues (= singular values) of a covariance matrix, descending, clipped at 0."""
    return np.clip(np.linalg.eigvalsh(covariance)[::-1], 0.0, None)


def numerical_rank(eigenvalues, rtol=RANK_RTOL):
    """#{i : lambda_i > rtol lambda_1}: the numerical rank of the features' covariance.

    The "tunnel effect" (Masarczyk et al., NeurIPS 2023) is read from it:
    the rank of the representations falls along depth from the layer where
    the tunnel starts. `eigenvalues`: those of Sigma_T (`total_covariance`,
    `covariance_eigenvalues`),
    i.e. its singular values; the threshold `rtol` (default `RANK_RTOL`,
    1e-3) is relative to the largest. 0 for features that are all equal.
    numpy's `matrix_rank` default (d eps times the largest) would count the
    directions float32 round-off fills; the tunnel-effect paper's threshold
    is not restated here, so compare ranks across papers with care.
    """
    eigenvalues = np.asarray(eigenvalues, np.float64)
    largest = float(np.max(eigenvalues)) if eigenvalues.size else 0.0
    if not largest > 0:
        return 0.0
    return float(np.sum(eigenvalues > rtol * largest))


def effective_rank(eigenvalues):
    """exp(H(p)), p_i = lambda_i / sum_j lambda_j: the entropy effective rank.

    Roy & Vetterli (EUSIPCO 2007) on the eigenvalues (singular values) of
    the features' covariance Sigma_T: d for isotropic features, 1 when all
    the variance lies along one direction, and no threshold to choose. NaN
    for features that are all equal.
    """
    eigenvalues = np.asarray(eigenvalues, np.float64)
    total = float(np.sum(eigenvalues))
    if not total > 0:
        return float("nan")
    p = eigenvalues[eigenvalues > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


# --- Out-of-distribution data: NC5 and NECO ---------------------------------------


def nc5(class_means, ood_mean):
    """NC5 = (1/K) sum_k |<mu_k, mu_OOD>| / (||mu_k|| ||mu_OOD||) (Ammar et al., ICLR 2024).

    "NECO: NEural Collapse based Out-of-distribution detection": NC5,
    the orthogonality deviation: the mean absolute cosine between the
    in-distribution (ID) class means mu_k (not centred) and the global mean
    mu_OOD of the out-of-distribution features. It goes to 0 as training
    makes the OOD features orthogonal to the ID class means. rhubarbwu's
    neural-collapse package (`orthogonality_deviation(M, m_G_ood)`) computes
    the same mean of |cos(mu_k, mu_OOD)| over uncentred rows; this agrees
    with it. `class_means`: (K, d) array or `Rows`, read tile by tile;
    rows of NaN (classes never seen) are left out. NaN when mu_OOD = 0.
    """
    rows = as_rows(class_means)
    ood_mean = np.asarray(ood_mean, np.float64)
    scale = max(largest_entry(ood_mean), 0.0)
    if not (np.isfinite(scale) and scale > 0):
        return float("nan")
    ood = ood_mean / scale
    ood /= np.linalg.norm(ood)
    total, count = 0.0, 0
    with np.errstate(invalid="ignore", divide="ignore"):
        for _, tile in rows.tiles():
            tile = tile[np.isfinite(tile).all(axis=1)]
            largest = np.max(np.abs(tile), axis=1, keepdims=True)
            tile = tile / np.where(largest > 0, largest, 1.0)  # no overflow in the norms
            cosines = np.abs(tile @ ood) / np.linalg.norm(tile, axis=1)
            total += float(np.sum(cosines))
            count += tile.shape[0]
    return total / count if count else float("nan")


def neco_score(features, components, center=None):
    """NECO(h) = ||P (h - c)|| / ||h - c|| per row (Ammar et al., ICLR 2024).

    P is the projection on the d' orthonormal `components` (d, d') of the
    in-distribution features' principal subspace (`CollapseStatistics.
    principal_directions`): under neural collapse the ID features lie in
    the span of their class means, and OOD features nearly orthogonal to
    it, so the score is near 1 for ID and lower for OOD samples (higher
    means "in distribution"). The paper writes it for h itself (c = 0, the
    default). Definitional difference: public implementations (a
    `neco(feature_id_train, ...)` function with scikit-learn) first
    standardize every feature with the ID training data's mean and standard
    deviation and then fit scikit-learn's PCA, which centres; `center` (the
    ID global mean) does the centring, not the per-feature scaling, and P
    comes from the covariance of the raw features. The paper multiplies the
    score by the maximal logit for vision transformers; multiply the result
    likewise.
    Rows with h = c give NaN.

    Args:
        features: (N, d) features.
        components: (d, d') orthonormal columns.
        center: (d,) subtracted first, or None.
    Returns:
        (N,) float64 scores in [0, 1].
    """
    h = np.asarray(features, np.float64)
    if center is not None:
        h = h - np.asarray(center, np.float64)
    h = h / np.maximum(np.max(np.abs(h), axis=1, keepdims=True), np.finfo(float).tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(h @ np.asarray(components, np.float64), axis=1) / np.linalg.norm(h, axis=1)


def auroc(scores_in, scores_out):
    """Area under the ROC curve of `scores_in` (positives) against `scores_out`.

    The probability that a random in-distribution score exceeds a random
    OOD one, ties counting 1/2: the Mann-Whitney U statistic over n_in n_out
    (ranks with ties averaged), O(n log n), no threshold sweep. 1 separates
    perfectly, 0.5 is chance. NaN scores are refused.
    """
    scores_in = np.asarray(scores_in, np.float64).ravel()
    scores_out = np.asarray(scores_out, np.float64).ravel()
    if not (scores_in.size and scores_out.size):
        raise ValueError("auroc needs at least one score of each kind")
    both = np.concatenate([scores_in, scores_out])
    if not np.isfinite(both).all():
        raise ValueError("auroc: scores must be finite (drop or fix NaN scores first)")
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size)
    sorted_scores = both[order]
    # Average ranks over ties (1-based).
    starts = np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))
    ends = np.concatenate([starts[1:], [both.size]])
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    n_in, n_out = scores_in.size, scores_out.size
    u = ranks[:n_in].sum() - n_in * (n_in + 1) / 2.0
    return float(u / (n_in * n_out))
