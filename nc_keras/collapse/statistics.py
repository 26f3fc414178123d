"""The statistics that neural-collapse metrics are computed from.

NC1-NC4 (Zhu et al. 2021, Sec. 4; `nc_keras.collapse.formulas`) need only
the class counts n_k, the class means mu_k and the within-class scatter
S = sum_k sum_i (h_ki - mu_k)(h_ki - mu_k)^T = N Sigma_W, and only through
tr(Sigma_W) and u^T Sigma_W u for u in the span of the centred means; the
CDNV also needs its per-class traces sum_i ||h_ki - mu_k||^2. Two ways to
get them:

- `CollapseStatistics` (`nc_keras.collapse.streaming`) streams: float64
  counts, means, S and the K per-class traces, O(Kd + d^2) memory whatever
  N is (plus O(Bd) scratch kept for batches of B rows), updated batch by
  batch and merged across shards with Chan et al.'s pairwise formula
  (centred scatters plus a mean-difference correction), never raw second
  moments, so NC1 keeps its relative accuracy in deep collapse, when the
  within-class spread is many orders below the between-class spread.
- `InMemoryStatistics` (`nc_keras.collapse.in_memory`, behind `metrics`)
  holds every feature: NC1 needs Sigma_W only in the (K-1)-dim span of the
  class means and the trace ratio only its trace (O(NdK) work); it forms
  the d x d scatter S only for the ranks (O(Nd^2)).

Neither forms a K x K array: the metrics read the K x d means tile by tile
(`nc_keras.collapse.tiles`), so memory beyond the statistics stays under
the tile budget at any K.

Both keep the features in a frame h' = (h - shift) / scale, with `scale` a
power of two (exact): streaming takes `shift` as the first batch's mean,
so the running means are small numbers whatever the global offset, and
both pick `scale` so that squares neither overflow nor underflow: NC1 is
the same for features x 1e160 or x 1e-160.

This module holds what both share: their base class, whose `measure` turns
the statistics into the result dict (`METRIC_KEYS`): NC1-NC4 and, as extras,

- ``ncc_mismatch``: share of samples whose prediction argmax(W h + b) differs
  from the nearest class mean argmin_k ||h - mu_k|| (Papyan et al.'s NC4; the
  paper's NC4 is the bias metric). The class means are only final after a
  pass over the data, so this needs a second pass: `metrics` has all
  features in memory and is exact; `nc_keras.collapse.measure_model` does a
  second pass by default; the callback, by default, compares against the
  class means of its previous measurement (see
  `nc_keras.callbacks.NeuralCollapse`).
- ``accuracy``: share of samples with argmax(W h + b) equal to the label.
- ``means_etf_error``: || Hbar^T Hbar / ||Hbar^T Hbar||_F - E ||_F, the NC2
  distance for the centred class means instead of the classifier.
- ``means_norm_cv`` / ``classifier_norm_cv``: coefficient of variation
  (std / mean, population std) of ||mu_k - mu_G|| and of ||w_k||.
- ``trace_ratio``: tr(Sigma_W) / tr(Sigma_B), the "NC1 quotient" of later
  papers (one key for both names).
- ``cdnv``, ``means_cos_std``, ``means_cos_max_gap``, ``gnc2``, ``unc3``,
  ``nc3_papyan``: the CDNV, equiangularity, maximal angles, hyperspherical
  uniformity, uniform duality and Papyan et al.'s self-duality; formulas
  and citations in `nc_keras.collapse.formulas`.
- ``ncc_accuracy``: share of samples whose nearest class mean is their
  label (counted as ``ncc_mismatch`` is: exact in two passes, or against
  given means in one); it needs no classifier, so intermediate layers have
  it too.
- ``numerical_rank`` and ``effective_rank``: of the covariance Sigma_T of
  the centred features, from the statistics (no pass over the samples):
  the eigenvalues above `formulas.RANK_RTOL` (1e-3) times the largest, and
  the exponential of their entropy.

Given minority classes M (imbalanced training), `minority_metrics` adds the
optional keys `MINORITY_KEYS` (Fang et al. 2021): ``minority_accuracy``,
the mean per-class accuracy over M, and ``minority_cosine``, the mean
pairwise cosine of the classifier rows w_k, k in M. They are absent without
M, so the default result dict keeps `METRIC_KEYS` only.

Outcomes for bad input (never a silent number):

- labels outside [0, K), not integers, or (N, K) rows that are not exactly
  one-hot (logits passed as labels): ``ValueError`` naming them; logits of
  a shape other than (B, K): ``ValueError`` naming them;
- NaN or infinite features: ``RuntimeWarning`` once per measurement and NaN
  for every metric that depends on the features (NC2, the classifier norm
  CV and the accuracy of the finite samples are still reported); the
  offending samples are counted, not used;
- NaN or infinite W or b: ``RuntimeWarning`` naming W or b, and NaN for
  every metric that uses it, accuracy and ncc_mismatch included (they
  count predictions of that classifier);
- K > d + 1 (more classes than a simplex ETF fits in d dimensions): one
  ``RuntimeWarning`` and NaN for the ETF distances (nc2, nc3,
  means_etf_error, means_cos_max_gap); every other metric is a number;
- a class with no sample (`absent_classes="nan"`, the default):
  ``RuntimeWarning`` naming it and NaN for every metric that needs all
  class means (all but NC2, NC4, accuracy, the classifier norm CV and
  the ranks);
  with `absent_classes="skip"` every metric is computed over the classes
  that have samples (W and b restricted to their rows, K replaced by their
  number, "num_classes_present" added), except accuracy and NCC mismatch,
  which count the model's predictions over all K classes; fewer than two
  classes with samples: NaN for the class-mean metrics, with a warning;
- all class means equal up to round-off (Sigma_B = 0): NC1, NC3 and the
  class-mean extras are 0/0, reported as NaN with a ``RuntimeWarning``; so is
  NC2 (or NC3) for W = 0 (or W Hbar = 0).
"""

import warnings

import numpy as np

from nc_keras.collapse import formulas, tiles
from nc_keras.collapse.inputs import as_classifier, as_num_classes, to_numpy

__all__ = [
    "ABSENT_CLASSES", "CLASSIFIER_KEYS", "FEATURE_ONLY_KEYS", "METRIC_KEYS", "MINORITY_KEYS", "OOD_KEYS",
    "class_square_sums",
    "class_sums", "frame_scale", "minority_metrics", "power_of_two_above",
]  # fmt: skip

# The keys of every result dict, in the order tables print them.
METRIC_KEYS = (
    "nc1",
    "nc2",
    "nc3",
    "nc4",
    "ncc_mismatch",
    "accuracy",
    "means_etf_error",
    "means_norm_cv",
    "classifier_norm_cv",
    "trace_ratio",
    "cdnv",
    "means_cos_std",
    "means_cos_max_gap",
    "gnc2",
    "unc3",
    "nc3_papyan",
    "ncc_accuracy",
    "numerical_rank",
    "effective_rank",
)
# The keys that depend on the features alone, not on W or b: what
# intermediate layers are measured by (`measure()` without a classifier).
# Every new feature-only metric belongs here too.
FEATURE_ONLY_KEYS = (
    "nc1", "means_etf_error", "means_norm_cv", "trace_ratio", "cdnv", "means_cos_std",
    "means_cos_max_gap", "gnc2", "ncc_accuracy", "numerical_rank", "effective_rank",
)  # fmt: skip

# The keys that depend on the classifier W alone, not on the features.
CLASSIFIER_KEYS = ("nc2", "classifier_norm_cv", "minority_cosine")
# The optional keys of a result dict given minority classes (imbalanced data).
MINORITY_KEYS = ("minority_accuracy", "minority_cosine")
# The optional keys given out-of-distribution data (Ammar et al. 2024).
OOD_KEYS = ("nc5",)

# What a measurement does with classes that have no sample: NaN for the
# metrics that need every class mean, or measure the classes present.
ABSENT_CLASSES = ("nan", "skip")

# Up to this many classes in a batch, per-class masks beat sorting.
_MASKED_MAX_CLASSES = 64


def class_sums(features, labels, shift=None):
    """The classes present in one batch, their counts and sums of features (minus `shift`).

    Returns (present (P,), counts (P,), sums (P, d), inverse (B,)) with
    `present` sorted and `inverse` each row's index into it: O(B d + P d),
    whatever K (a vocabulary batch holds a few of 50,000 classes).
    """
    present, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if present.size <= _MASKED_MAX_CLASSES:
        # Boolean masks copy each row once; a one-hot product is slower here
        # (thin BLAS shapes) and sorting costs an extra full copy.
        sums = np.zeros((present.size, features.shape[1]))
        for index in range(present.size):
            rows = features[inverse == index]
            if shift is not None:
                rows -= shift
            sums[index] = rows.sum(axis=0)
        return present, counts, sums, inverse
    # Many classes: a sparse (P, B) one-hot product reads each row once
    # (np.add.reduceat over thousands of short segments is 20x slower).
    import scipy.sparse

    one_hot = scipy.sparse.csr_matrix(
        (np.ones(inverse.size), (inverse, np.arange(inverse.size))),
        shape=(present.size, inverse.size))
    # Far from the origin, h - shift first: exact for h near the shift.
    sums = np.asarray(one_hot @ (features if shift is None else features - shift))
    return present, counts, sums, inverse


def power_of_two_above(value):
    """The power of two 2^e with value <= 2^e < 2 value (1 for 0, inf or NaN).

    Dividing by it is exact, and brings `value` into [0.5, 1].
    """
    if not (np.isfinite(value) and value > 0):
        return 1.0
    return float(np.ldexp(1.0, int(np.frexp(value)[1])))


def frame_scale(spread):
    """The frame's scale for features of this spread: 1, or a power of two near it.

    Only spreads whose squares could overflow or underflow (outside
    [2^-256, 2^256]) are rescaled: dividing costs a pass over the features,
    and a power-of-two scale changes no rounding, so 1 is exact elsewhere.
    """
    return 1.0 if 2.0**-256 < spread < 2.0**256 else power_of_two_above(spread)


def class_square_sums(rows, labels, num_classes):
    """Per-class sums of ||row||^2 (num_classes,): the per-class traces of a centred batch.

    `labels` index the classes (class labels, or a batch's `inverse`).
    """
    return np.bincount(labels, weights=np.einsum("ij,ij->i", rows, rows),
                       minlength=num_classes)


def _classifier_faults(W, b):
    """(W finite, b finite), warning once with the metrics each fault voids."""
    w_ok, b_ok = bool(np.isfinite(W).all()), bool(np.isfinite(b).all())
    faults = [name for name, ok in (("W", w_ok), ("b", b_ok)) if not ok]
    if faults:
        voided = ("nc2, nc3, nc3_papyan, unc3, classifier_norm_cv, " if not w_ok else "")
        warnings.warn(
            f"{' and '.join(faults)} ha{'s' if len(faults) == 1 else 've'} NaN or "
            f"infinite entries: {voided}nc4, accuracy and ncc_mismatch (predictions "
            "of this classifier) are NaN", RuntimeWarning, stacklevel=3)
    return w_ok, b_ok


class _Statistics:
    """What the metrics read, and `measure`, which reads it.

    Subclasses fill `counts` (K,), `dim`, the counters and the frame: the
    class means `_means` (K, d) of h' = (h - shift) / scale, and give the
    within-class scatter of h' through `_class_within` (K,) (per-class
    sums of ||h' - mu'_k||^2) and `_within_projected`.
    """

    _COUNTERS = ("num_nonfinite", "num_predicted", "num_correct",
                 "num_ncc_compared", "num_ncc_mismatch", "num_ncc_labelled", "num_ncc_correct")

    def __init__(self, num_classes, absent_classes="nan", tile_bytes=None):
        self.num_classes = as_num_classes(num_classes)
        if absent_classes not in ABSENT_CLASSES:
            raise ValueError(f"absent_classes must be one of {ABSENT_CLASSES}; "
                             f"got {absent_classes!r}")
        self.absent_classes = absent_classes
        with tiles.tile_budget(tile_bytes):  # checked here, not at the first measure
            self.tile_bytes = tiles.tile_bytes()
        self.dim = None
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self.shift = None  # (d,)
        self.scale = 1.0  # a power of two
        self._means = None
        self.num_nonfinite = 0  # samples dropped for NaN/inf features
        self.num_predicted = 0
        self.num_correct = 0
        self.num_ncc_compared = 0
        self.num_ncc_mismatch = 0
        self.num_ncc_labelled = 0  # samples whose nearest class mean was found
        self.num_ncc_correct = 0  # ... and is their label
        # Per-class correct predictions c_k, for per-class accuracies.
        self.class_correct = np.zeros(self.num_classes, dtype=np.int64)

    def _count_correct(self, predicted, y):
        self.num_predicted += y.shape[0]
        self.num_correct += int((predicted == y).sum())
        self.class_correct += np.bincount(y[predicted == y], minlength=self.num_classes)

    @property
    def num_samples(self):
        return int(self.counts.sum())

    @property
    def means(self):
        """(K, d) class means in the features' units (rows of unseen classes: `shift`)."""
        return None if self._means is None else self.shift + self.scale * self._means

    @property
    def class_means(self):
        """(K, d) class means; NaN rows for classes with no sample."""
        means = np.array(self.means, dtype=np.float64)
        means[self.counts == 0] = np.nan
        return means

    def _class_within(self):
        """(K,) sum_i ||h'_ki - mu'_k||^2 per class, in the frame's units."""
        raise NotImplementedError

    def _within_projected(self, U):
        """diag(U^T Sigma_W' U) for orthonormal columns U (d, r), frame units."""
        raise NotImplementedError

    def _within_scatter(self):
        """S = sum_k sum_i (h'_ki - mu'_k)(h'_ki - mu'_k)^T (d, d), frame units."""
        raise NotImplementedError

    def covariance(self):
        """Sigma_T (d, d): the covariance of the features centred on their mean, their units.

        From the within-class scatter and the class means
        (`formulas.total_covariance`): no pass over the samples.
        """
        mu_G = formulas.global_mean(self.counts, self._means)
        sigma = formulas.total_covariance(self._within_scatter(), self.counts,
                                          tiles.Rows(self._means, offset=mu_G))
        return sigma * self.scale**2

    def global_mean(self):
        """mu_G (d,), the mean of all features, in their units."""
        return self.shift + self.scale * formulas.global_mean(self.counts, self._means)

    def principal_directions(self, num_directions=None):
        """(d, d') orthonormal principal directions of the features, by decreasing variance.

        The eigenvectors of `covariance()`; `num_directions` d' defaults to
        the numbers of classes present minus one, the span of the centred
        class means under neural collapse (what `formulas.neco_score`
        projects on).
        """
        if num_directions is None:
            num_directions = max(int(np.sum(self.counts > 0)) - 1, 1)
        num_directions = int(num_directions)
        if not 1 <= num_directions <= self.dim:
            raise ValueError(f"num_directions must be in [1, {self.dim}]; got {num_directions}")
        _, vectors = np.linalg.eigh(self.covariance())
        return vectors[:, ::-1][:, :num_directions]

    def nc5(self, ood_mean):
        """NC5 of these (in-distribution) class means against the OOD features' mean.

        `formulas.nc5` (Ammar et al., ICLR 2024): mean over the classes with
        samples of |cos(mu_k, mu_OOD)|; `ood_mean` (d,) in the features' units.
        """
        seen = np.flatnonzero(self.counts)
        # Rows proportional to shift + scale mu'_k (cosines ignore the scale).
        return formulas.nc5(tiles.Rows(self._means, index=seen, offset=-self.shift / self.scale),
                            np.asarray(ood_mean, np.float64))

    def within_trace(self):
        """tr(Sigma_W), in the frame's units (features / scale)."""
        return float(self._class_within().sum()) / self.num_samples

    def measure(self, W=None, b=None):
        """NC1-NC4 and the extras (module docstring) from these statistics.

        Args:
            W: (K, d) classifier, the transpose of a Keras Dense kernel; None
                for features without a classifier (an intermediate layer):
                then only the `FEATURE_ONLY_KEYS` are numbers, the rest NaN.
            b: (K,) bias or None (zero).
        Returns:
            dict of Python floats with the keys `METRIC_KEYS`, and
            "num_classes_present" when `absent_classes` is "skip".
        """
        with tiles.tile_budget(self.tile_bytes):
            return self._measure(W, b)

    def _measure(self, W, b):
        out = dict.fromkeys(METRIC_KEYS, float("nan"))
        if W is not None:
            W, b = as_classifier(W, b, self.num_classes, self.dim)
        # The classes measured: all K, or (absent_classes="skip") those with
        # samples, W and b restricted to their rows.
        present = None
        if self.absent_classes == "skip":
            measured = np.flatnonzero(self.counts)
            out["num_classes_present"] = float(measured.size)
            if measured.size < self.num_classes:
                present = measured
        K = self.num_classes if present is None else present.size
        if present is not None and K < 2:
            warnings.warn(f"{K} class(es) have samples: the class-mean metrics need two",
                          RuntimeWarning, stacklevel=3)
        if W is None:
            d = self.dim
            w_ok = predicts = False
        else:
            d = W.shape[1]
            w_ok, b_ok = _classifier_faults(W, b)
            predicts = w_ok and b_ok
            if present is not None:
                W, b = tiles.Rows(W, index=present), b[present]
        # Without W and without samples d is unknown: nothing to warn about.
        etf = d is None or formulas.etf_exists(K, d)
        if not etf:
            warnings.warn(
                f"{K} classes in {d} dimensions: no simplex ETF exists (it needs "
                "d >= K - 1), so nc2, nc3, means_etf_error and means_cos_max_gap "
                "are NaN", RuntimeWarning, stacklevel=3)
        if w_ok and K >= 2:
            out["nc2"] = formulas.nc2(W) if etf else float("nan")
            out["classifier_norm_cv"] = formulas.classifier_norm_cv(W)
        if predicts and self.num_predicted:
            out["accuracy"] = self.num_correct / self.num_predicted
        if self.num_nonfinite:
            warnings.warn(
                f"{self.num_nonfinite} sample(s) have NaN or infinite features: "
                "feature metrics are NaN", RuntimeWarning, stacklevel=3)
            return out
        if self.num_samples == 0:
            warnings.warn("no samples: feature metrics are NaN", RuntimeWarning,
                          stacklevel=3)
            return out

        mu_G = formulas.global_mean(self.counts, self._means)  # frame units
        # The rank needs no class mean but the features': absent classes
        # (n_k = 0) add nothing to Sigma_T.
        eigenvalues = formulas.covariance_eigenvalues(formulas.total_covariance(
            self._within_scatter(), self.counts, tiles.Rows(self._means, offset=mu_G)))
        out["numerical_rank"] = formulas.numerical_rank(eigenvalues)
        out["effective_rank"] = formulas.effective_rank(eigenvalues)
        if predicts:
            out["nc4"] = formulas.nc4(W, b, self.shift + self.scale * mu_G)
        empty = np.flatnonzero(self.counts == 0)
        if present is None and empty.size:
            warnings.warn(
                f"class(es) {empty[:10].tolist()}"
                f"{f' and {empty.size - 10} more' if empty.size > 10 else ''} have no sample: "
                "NC1, NC3, the NCC metrics and the class-mean extras are NaN; "
                "absent_classes='skip' measures the classes that have samples",
                RuntimeWarning, stacklevel=3)
            return out
        if predicts and self.num_ncc_compared:
            out["ncc_mismatch"] = self.num_ncc_mismatch / self.num_ncc_compared
        if self.num_ncc_labelled:
            out["ncc_accuracy"] = self.num_ncc_correct / self.num_ncc_labelled
        if K < 2:
            return out

        # Hbar^T, K x d, is read tile by tile, never formed.
        Hbar = tiles.Rows(self._means, index=present, offset=mu_G)
        # The round-off of the means is relative to their size in the
        # features' units, not to their size after the shift.
        tolerance = formulas.rounding_level(
            tiles.Rows(self._means, index=present, offset=-self.shift / self.scale))
        svd = formulas.left_singular_vectors(Hbar)
        if not svd[1][0] > tolerance:
            warnings.warn(
                "all class means coincide (Sigma_B = 0): NC1, NC3 and the "
                "class-mean extras are NaN", RuntimeWarning, stacklevel=3)
            return out
        out["nc1"] = formulas.nc1(self._within_projected, Hbar, tolerance, svd)
        counts = self.counts if present is None else self.counts[present]
        within = self._class_within()
        if present is not None:
            within = within[present]
        # Absent classes hold no sample: the trace is the same for both.
        out["trace_ratio"] = formulas.trace_ratio(self.within_trace(), Hbar)
        pairs = formulas.PAIR_KEYS if etf else tuple(
            key for key in formulas.PAIR_KEYS if key != "means_cos_max_gap")
        out.update(formulas.means_pair_metrics(Hbar, within / counts, pairs))
        out["means_norm_cv"] = formulas.means_norm_cv(Hbar)
        if etf:
            out["means_etf_error"] = formulas.means_etf_error(Hbar)
        if w_ok:
            out["nc3"] = formulas.nc3(W, Hbar) if etf else float("nan")
            out["unc3"] = formulas.unc3(W, Hbar)
            out["nc3_papyan"] = formulas.nc3_papyan(W, Hbar)
        return out


def minority_metrics(stats, W, minority_classes):
    """`MINORITY_KEYS` of statistics with counted predictions and a (K, d) classifier W.

    ``minority_accuracy`` (NaN if no prediction was counted) and
    ``minority_cosine`` over the classes `minority_classes` (Fang et al.
    2021; `formulas.minority_accuracy`, `formulas.minority_cosine`).
    """
    minority = np.asarray(minority_classes, dtype=np.int64)
    if minority.size == 0 or minority.min() < 0 or minority.max() >= stats.num_classes:
        raise ValueError(
            f"minority_classes must be class indices in [0, {stats.num_classes}); "
            f"got {list(minority_classes)}"
        )
    accuracy = float("nan")
    if stats.num_predicted:
        accuracy = formulas.minority_accuracy(stats.class_correct, stats.counts, minority)
    return {"minority_accuracy": accuracy,
            "minority_cosine": formulas.minority_cosine(to_numpy(W, np.float64), minority)}
