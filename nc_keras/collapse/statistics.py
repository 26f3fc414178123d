"""The statistics that neural-collapse metrics are computed from.

NC1-NC4 (Zhu et al. 2021, Sec. 4; `nc_keras.collapse.formulas`) need only
the class counts n_k, the class means mu_k and the within-class scatter
S = sum_k sum_i (h_ki - mu_k)(h_ki - mu_k)^T = N Sigma_W, and only through
tr(Sigma_W) and u^T Sigma_W u for u in the span of the centred means; the
CDNV also needs its per-class traces sum_i ||h_ki - mu_k||^2. Two ways to
get them:

- `CollapseStatistics` streams: float64 counts, means, S and the K
  per-class traces, O(Kd + d^2) memory whatever N is, updated batch by
  batch and merged across shards with Chan et al.'s pairwise formula
  (centred scatters plus a mean-difference correction), never raw second
  moments, so NC1 keeps its relative accuracy in deep collapse, when the
  within-class spread is many orders below the between-class spread.
- `InMemoryStatistics` (behind `metrics`) holds every feature: it never
  forms S, since NC1 needs Sigma_W only in the (K-1)-dim span of the class
  means and the trace ratio only its trace; O(NdK) work.

Both keep the features in a frame h' = (h - shift) / scale, with `scale` a
power of two (exact): streaming takes `shift` as the first batch's mean,
so the running means are small numbers whatever the global offset, and
both pick `scale` so that squares neither overflow nor underflow: NC1 is
the same for features x 1e160 or x 1e-160.

Both report the same dict (`METRIC_KEYS`): NC1-NC4 and, as extras,

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
- a class with no sample: ``RuntimeWarning`` naming it and NaN for every
  metric that needs all class means (all but NC2, NC4, accuracy and the
  classifier norm CV);
- all class means equal up to round-off (Sigma_B = 0): NC1, NC3 and the
  class-mean extras are 0/0, reported as NaN with a ``RuntimeWarning``; so is
  NC2 (or NC3) for W = 0 (or W Hbar = 0).
"""

import warnings

import numpy as np

from nc_keras.collapse import formulas
from nc_keras.collapse.inputs import (
    as_classifier,
    as_features,
    as_labels,
    as_logits,
    as_num_classes,
    finite_rows,
    to_numpy,
)

__all__ = [
    "CollapseStatistics", "FEATURE_ONLY_KEYS", "InMemoryStatistics", "METRIC_KEYS",
    "MINORITY_KEYS", "class_sums", "metrics", "minority_metrics",
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
)
# The keys that depend on the features alone, not on W or b: what
# intermediate layers are measured by (`measure()` without a classifier).
# Every new feature-only metric belongs here too.
FEATURE_ONLY_KEYS = (
    "nc1", "means_etf_error", "means_norm_cv", "trace_ratio", "cdnv", "means_cos_std",
    "means_cos_max_gap", "gnc2",
)  # fmt: skip

# The keys that depend on the classifier W alone, not on the features.
CLASSIFIER_KEYS = ("nc2", "classifier_norm_cv", "minority_cosine")
# The optional keys of a result dict given minority classes (imbalanced data).
MINORITY_KEYS = ("minority_accuracy", "minority_cosine")

# Up to this many classes in a batch, per-class masks beat sorting.
_MASKED_MAX_CLASSES = 64


def class_sums(features, labels, num_classes, shift=None):
    """Per-class counts (K,) and sums (K, d) of the features (minus `shift`) of one batch."""
    counts = np.bincount(labels, minlength=num_classes)
    present = np.flatnonzero(counts)
    sums = np.zeros((num_classes, features.shape[1]))
    if present.size <= _MASKED_MAX_CLASSES:
        # Boolean masks copy each row once; a one-hot product is slower here
        # (thin BLAS shapes) and sorting costs an extra full copy.
        for k in present:
            rows = features[labels == k]
            if shift is not None:
                rows -= shift
            sums[k] = rows.sum(axis=0)
        return counts, sums
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
    rows = features[order]
    if shift is not None:
        rows -= shift
    sums[present] = np.add.reduceat(rows, starts, axis=0)
    return counts, sums


def power_of_two_above(value):
    """The power of two 2^e with value <= 2^e < 2 value (1 for 0, inf or NaN).

    Dividing by it is exact, and brings `value` into [0.5, 1].
    """
    if not (np.isfinite(value) and value > 0):
        return 1.0
    return float(np.ldexp(1.0, int(np.frexp(value)[1])))


def _row_squares(rows, labels, num_classes):
    """Per-class sums of ||row||^2 (K,)."""
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
                 "num_ncc_compared", "num_ncc_mismatch")

    def __init__(self, num_classes):
        self.num_classes = as_num_classes(num_classes)
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
            dict of Python floats with the keys `METRIC_KEYS`.
        """
        out = dict.fromkeys(METRIC_KEYS, float("nan"))
        if W is None:
            K, d = self.num_classes, self.dim
            w_ok = predicts = False
        else:
            W, b = as_classifier(W, b, self.num_classes, self.dim)
            K, d = W.shape
            w_ok, b_ok = _classifier_faults(W, b)
            predicts = w_ok and b_ok
        etf = formulas.etf_exists(K, d)
        if not etf:
            warnings.warn(
                f"{K} classes in {d} dimensions: no simplex ETF exists (it needs "
                "d >= K - 1), so nc2, nc3, means_etf_error and means_cos_max_gap "
                "are NaN", RuntimeWarning, stacklevel=2)
        if w_ok:
            out["nc2"] = formulas.nc2(W) if etf else float("nan")
            out["classifier_norm_cv"] = formulas.classifier_norm_cv(W)
        if predicts and self.num_predicted:
            out["accuracy"] = self.num_correct / self.num_predicted
        if self.num_nonfinite:
            warnings.warn(
                f"{self.num_nonfinite} sample(s) have NaN or infinite features: "
                "feature metrics are NaN", RuntimeWarning, stacklevel=2)
            return out
        if self.num_samples == 0:
            warnings.warn("no samples: feature metrics are NaN", RuntimeWarning,
                          stacklevel=2)
            return out

        mu_G = formulas.global_mean(self.counts, self._means)  # frame units
        if predicts:
            out["nc4"] = formulas.nc4(W, b, self.shift + self.scale * mu_G)
        empty = np.flatnonzero(self.counts == 0)
        if empty.size:
            warnings.warn(
                f"class(es) {empty[:10].tolist()} have no sample: NC1, NC3, "
                "NCC mismatch and the class-mean extras are NaN",
                RuntimeWarning, stacklevel=2)
            return out
        if predicts and self.num_ncc_compared:
            out["ncc_mismatch"] = self.num_ncc_mismatch / self.num_ncc_compared

        Hbar = formulas.centred_means(self._means, mu_G)
        # The round-off of the means is relative to their size in the
        # features' units, not to their size after the shift.
        tolerance = formulas.rounding_level(self.shift / self.scale + self._means)
        if not np.linalg.norm(Hbar, 2) > tolerance:
            warnings.warn(
                "all class means coincide (Sigma_B = 0): NC1, NC3 and the "
                "class-mean extras are NaN", RuntimeWarning, stacklevel=2)
            return out
        out["nc1"] = formulas.nc1(self._within_projected, Hbar, tolerance)
        within = self._class_within()
        out["trace_ratio"] = formulas.trace_ratio(self.within_trace(), Hbar)
        out["cdnv"] = formulas.cdnv(Hbar, within / self.counts)
        out["means_norm_cv"] = formulas.means_norm_cv(Hbar)
        out["means_cos_std"] = formulas.means_cos_std(Hbar)
        out["gnc2"] = formulas.gnc2(Hbar)
        if etf:
            out["means_etf_error"] = formulas.means_etf_error(Hbar)
            out["means_cos_max_gap"] = formulas.means_cos_max_gap(Hbar)
        if w_ok:
            out["nc3"] = formulas.nc3(W, Hbar) if etf else float("nan")
            out["unc3"] = formulas.unc3(W, Hbar)
            out["nc3_papyan"] = formulas.nc3_papyan(W, Hbar)
        return out


class CollapseStatistics(_Statistics):
    """Sufficient statistics for NC1-NC4, accumulated batch by batch.

    Keeps, in float64: the class counts n_k (K,), the class means mu_k (K, d),
    the pooled within-class scatter S = sum_k sum_i (h_ki - mu_k)(...)^T
    (d, d) and its per-class traces (K,), so memory is O(Kd + d^2) whatever
    the number of samples; plus counters for accuracy and NCC mismatch. Two
    partial results combine exactly with Chan et al.'s pairwise update: for
    each class,

        S = S_a + S_b + n_a n_b / (n_a + n_b) (mu_b - mu_a)(mu_b - mu_a)^T,

    summed over classes. `update` folds this correction into the centring of
    the batch (see its comment), so each batch costs one (d x B)(B x d)
    symmetric product; no raw second moment (and no cancellation between
    large, nearly equal numbers) ever appears.

    Everything is stored for h' = (h - shift) / scale, with `shift` the mean
    of the first batch and `scale` a power of two of its spread, both kept:
    far from the origin (a global mean at 1e6) the running means stay small
    numbers, and h - shift is exact for h near the shift, so deep-collapse
    NC1 keeps its accuracy; features x 1e160 square without overflow. `means`,
    `scatter` and `within_covariance` give the features' units back.

    Args:
        num_classes: K (an integer).
        dim: feature width d; taken from the first batch when None.
    """

    def __init__(self, num_classes, dim=None):
        super().__init__(num_classes)
        self._scatter = None
        self._within = None
        if dim is not None:
            self._allocate(int(dim))

    def _allocate(self, dim):
        self.dim = dim
        self.shift = np.zeros(dim)
        self._means = np.zeros((self.num_classes, dim))
        self._scatter = np.zeros((dim, dim))
        self._within = np.zeros(self.num_classes)

    def _check_dim(self, dim):
        if self.dim is None:
            self._allocate(dim)
        elif dim != self.dim:
            raise ValueError(f"feature width {dim} does not match {self.dim}")

    @property
    def scatter(self):
        """S (d, d) in the features' units."""
        return None if self._scatter is None else self._scatter * self.scale**2

    def _to_frame(self, h):
        """h' = (h - shift) / scale; the first batch sets shift and scale."""
        if self.num_samples == 0:
            self.shift = h.mean(axis=0)
            centred = h - self.shift
            self.scale = power_of_two_above(np.abs(centred).max() or np.abs(h).max())
        else:
            centred = h - self.shift
        centred /= self.scale
        return centred

    def update(self, features, labels, logits=None):
        """Adds one batch.

        Args:
            features: (B, d) penultimate features, numpy or any backend tensor.
            labels: integer (B,) labels in [0, K) (or (B, 1), or exact one-hot).
            logits: optional (B, K) classifier outputs (logits or
                probabilities: only their argmax is used) to count accuracy.
        Returns:
            self.
        """
        y = as_labels(labels, self.num_classes)
        h = as_features(features, y.shape[0])
        self._check_dim(h.shape[1])
        if logits is not None:
            logits = as_logits(logits, y.shape[0], self.num_classes)
        finite = finite_rows(h)
        if not finite.all():
            self.num_nonfinite += int((~finite).sum())
            h, y = h[finite], y[finite]
            logits = None if logits is None else logits[finite]
        if logits is not None:
            self._count_correct(np.argmax(logits, axis=1), y)
        if y.shape[0] == 0:
            return self
        h = self._to_frame(h)
        counts_b, sums = class_sums(h, y, self.num_classes)
        present = counts_b > 0
        counts_a, total = self.counts[present], self.counts[present] + counts_b[present]
        delta = sums[present] / counts_b[present, None] - self._means[present]
        # Chan's merge folded into the centring: with
        # c_k = mu_a + (1 - sqrt(n_a / (n_a + n_b))) (mu_b - mu_a),
        # sum_i (h_i - c_k)(h_i - c_k)^T equals the batch's centred scatter
        # plus n_a n_b / (n_a + n_b) (mu_b - mu_a)(mu_b - mu_a)^T exactly.
        # c_k lies between the running and the batch mean, so h_i - c_k is of
        # the size of the within-class spread (no cancellation), and one
        # symmetric (syrk) product of B rows does everything; the same rows
        # give the per-class traces.
        centres = np.zeros_like(sums)
        centres[present] = self._means[present] + delta * (
            1.0 - np.sqrt(counts_a / total))[:, None]
        rows = h - centres[y]
        self._scatter += rows.T @ rows
        self._within += _row_squares(rows, y, self.num_classes)
        self._means[present] += delta * (counts_b[present] / total)[:, None]
        self.counts = self.counts + counts_b
        return self

    def update_ncc(self, features, logits, class_means):
        """Counts samples whose argmax(logits) differs from the nearest class mean.

        Args:
            features: (B, d) features.
            logits: (B, K) classifier outputs.
            class_means: (K, d) reference means (e.g. `self.class_means`
                after a full pass, for the exact value); rows of NaN (classes
                never seen) are never nearest.
        """
        h = as_features(features)
        predicted = np.argmax(as_logits(logits, h.shape[0], self.num_classes), axis=1)
        # Same samples as `update` keeps.
        finite = finite_rows(h)
        h, predicted = h[finite], predicted[finite]
        means = np.asarray(class_means, dtype=np.float64)
        self.num_ncc_compared += h.shape[0]
        self.num_ncc_mismatch += formulas.ncc_mismatches(predicted, h, means)
        return self

    def _merge(self, other):
        if self.num_samples == 0:  # nothing stored yet: adopt the other frame
            self.shift, self.scale = other.shift.copy(), other.scale
        # The other shard's statistics in this frame (exact for the same frame).
        ratio = other.scale / self.scale
        means_b = (other.shift - self.shift) / self.scale + ratio * other._means
        counts_a, counts_b = self.counts, other.counts
        total = counts_a + counts_b
        both = (counts_a > 0) & (counts_b > 0)
        delta = means_b - self._means
        weight = np.zeros(self.num_classes)
        weight[both] = counts_a[both] * counts_b[both] / total[both]
        correction = delta * np.sqrt(weight)[:, None]
        self._scatter += other._scatter * ratio**2 + correction.T @ correction
        self._within += other._within * ratio**2 + np.sum(correction**2, axis=1)
        nonzero = counts_b > 0
        self._means[nonzero] += delta[nonzero] * (counts_b[nonzero] / total[nonzero])[:, None]
        self.counts = total

    def merge(self, other):
        """Adds the statistics of another shard (same K and d); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge statistics for {other.num_classes} classes "
                f"into {self.num_classes}"
            )
        if other.dim is not None:
            self._check_dim(other.dim)
            if other.num_samples:
                self._merge(other)
        for name in self._COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.class_correct = self.class_correct + other.class_correct
        return self

    def get_state(self):
        """A dict of numpy arrays (e.g. for np.savez), to merge on another host."""
        state = {"num_classes": np.int64(self.num_classes), "counts": self.counts.copy()}
        if self.dim is not None:
            state.update(shift=self.shift.copy(), scale=np.float64(self.scale),
                         means=self._means.copy(), scatter=self._scatter.copy(),
                         class_within=self._within.copy())
        state.update({name: np.int64(getattr(self, name)) for name in self._COUNTERS})
        state["class_correct"] = self.class_correct.copy()
        return state

    @classmethod
    def from_state(cls, state):
        """The inverse of `get_state` (accepts an open np.load result)."""
        stats = cls(int(state["num_classes"]))
        stats.counts = np.array(state["counts"], dtype=np.int64)
        if "means" in state:
            stats._allocate(int(np.shape(state["means"])[1]))
            stats._means = np.array(state["means"], dtype=np.float64)
            stats._scatter = np.array(state["scatter"], dtype=np.float64)
            # States saved before the frame and the per-class traces existed
            # hold means in the features' units and no traces (CDNV is NaN).
            if "shift" in state:
                stats.shift = np.array(state["shift"], dtype=np.float64)
                stats.scale = float(state["scale"])
            stats._within = (np.array(state["class_within"], dtype=np.float64)
                             if "class_within" in state else np.full(stats.num_classes, np.nan))
        for name in cls._COUNTERS:
            setattr(stats, name, int(state[name]))
        if "class_correct" in state:  # absent from states saved before it existed
            stats.class_correct = np.array(state["class_correct"], dtype=np.int64)
        return stats

    def within_covariance(self):
        """Sigma_W = S / N, in the features' units."""
        return self.scatter / max(self.num_samples, 1)

    def within_trace(self):
        # From S itself: states saved without per-class traces still have it.
        return float(np.trace(self._scatter)) / self.num_samples

    def _class_within(self):
        return self._within

    def _within_projected(self, U):
        return np.sum((self._scatter @ U) * U, axis=0) / self.num_samples


class InMemoryStatistics(_Statistics):
    """Exact two-pass statistics of features held in memory; nothing to update.

    NC1 needs Sigma_W only in the (K-1)-dim span of the centred means, and
    the trace ratio only its trace, so with every feature at hand the d x d
    scatter is never formed: O(NdK) work instead of O(Nd^2). The frame has
    no shift unless the global mean is far from the origin compared with
    the class means' spread (then `shift` = mu_G), and `scale` 1, or a power
    of two of the largest |mu_k - mu_G| (the unit NC1 compares the
    within-class spread with) when that is so large or small that its
    square would overflow or underflow.

    Args:
        num_classes: K (an integer).
        features: (N, d) features, numpy or any backend tensor.
        labels: integer (N,) labels in [0, K) (or (N, 1), or exact one-hot).
        W: (K, d) classifier, or None; with it, the accuracy and the exact
            NCC mismatch are counted too.
        b: (K,) bias, or None (zero).
    """

    # Bytes per block of centred features (`_centred_blocks`).
    _BLOCK_BYTES = 2**21

    def __init__(self, num_classes, features, labels, W=None, b=None):
        super().__init__(num_classes)
        y = as_labels(labels, self.num_classes)
        h = as_features(features, y.shape[0])
        self.dim = h.shape[1]
        finite = finite_rows(h)
        if not finite.all():
            self.num_nonfinite = int((~finite).sum())
            h, y = h[finite], y[finite]
        self.shift = np.zeros(self.dim)
        self._shifted = False
        means = self._class_means(h, y)
        present = self.counts > 0
        if present.any():
            mu_G = self.counts @ means / self.counts.sum()
            spread = np.abs(means[present] - mu_G).max() or np.abs(means).max()
            if np.abs(mu_G).max() > 16 * spread:
                # Far from the origin the means' round-off, eps |mu_G|, would
                # be of the size of a deep-collapse spread: means relative to
                # mu_G (and h - mu_G, exact near it) keep it at eps * spread.
                self.shift, self._shifted = mu_G, True
                means = self._class_means(h, y)
            # Only spreads whose squares could overflow or underflow are
            # rescaled: dividing every block costs a pass over the features.
            if not 2.0**-256 < spread < 2.0**256:
                self.scale = power_of_two_above(spread)
        self._means = means / self.scale
        self._h, self._y = h, y
        self._within = None
        if W is not None:
            self._count_predictions(*as_classifier(W, b, self.num_classes, self.dim))

    def _class_means(self, h, y):
        """Counts (into `counts`) and class means relative to `shift` (K, d)."""
        self.counts, sums = class_sums(h, y, self.num_classes,
                                       self.shift if self._shifted else None)
        present = self.counts > 0
        means = np.zeros((self.num_classes, self.dim))
        means[present] = sums[present] / self.counts[present, None]
        return means

    def _count_predictions(self, W, b):
        # Logits and the NCC inner products in one (N, d) x (d, 2K) product.
        K, h, y = self.num_classes, self._h, self._y
        means = self.means
        scores = h @ np.concatenate([W, means]).T
        predicted = np.argmax(scores[:, :K] + b, axis=1)
        self.num_ncc_compared = y.shape[0]
        self._count_correct(predicted, y)
        self.num_ncc_mismatch = formulas.ncc_mismatches(
            predicted, h, self.class_means, products=scores[:, K:])

    def _centred_blocks(self):
        """Yields (h_i - mu_k) / scale for blocks of rows, with their labels.

        Elementwise centring: h - mu_k is exact for h near mu_k (even far
        from the origin), whereas sum ||h||^2 - sum n_k ||mu_k||^2 cancels
        catastrophically in deep collapse (and h U - mu_k U does far from
        the origin). Blocks of about 2 MB stay in cache between their uses.
        """
        means = self.scale * self._means  # relative to `shift`
        rows = max(64, self._BLOCK_BYTES // (8 * self.dim))
        for start in range(0, self._y.shape[0], rows):
            labels = self._y[start:start + rows]
            if self._shifted:
                centred = self._h[start:start + rows] - self.shift
                centred -= means[labels]
            else:
                centred = self._h[start:start + rows] - means[labels]
            if self.scale != 1.0:
                centred /= self.scale
            yield centred, labels

    def _class_within(self):
        if self._within is None:
            self._within = np.zeros(self.num_classes)
            for centred, labels in self._centred_blocks():
                self._within += _row_squares(centred, labels, self.num_classes)
        return self._within

    def _within_projected(self, U):
        if self._shifted:  # far from the origin: centre each block exactly first
            total = np.zeros(U.shape[1])
            for centred, _ in self._centred_blocks():
                projected = centred @ U
                total += np.einsum("ij,ij->j", projected, projected)
            return total / self.num_samples
        # (h - mu_k) U = h U - mu_k U: one large product instead of many
        # small ones (BLAS threads synchronize at each call); its round-off,
        # O(eps ||h||), is that of centring h, and ||h|| is here within 16
        # times the spread of the class means.
        centred = self._h @ U - (self.means @ U)[self._y]
        if self.scale != 1.0:
            centred /= self.scale
        return np.einsum("ij,ij->j", centred, centred) / self.num_samples


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


def metrics(features, labels, W, b=None, num_classes=None, minority_classes=None):
    """NC1-NC4 and the extras of in-memory features, exactly (Sec. 4, "Metrics").

    Args:
        features: (N, d) penultimate features (numpy or any backend tensor).
        labels: integer (N,) labels in [0, K).
        W: (K, d) classifier as in the paper (Keras Dense kernel transposed).
        b: (K,) bias, or None for a classifier without bias.
        num_classes: K; defaults to W.shape[0].
        minority_classes: class indices; with them, the result also has
            `MINORITY_KEYS` (minority_accuracy, minority_cosine).
    Returns:
        dict of Python floats keyed by `METRIC_KEYS` ("nc1", "nc2", "nc3",
        "nc4", "ncc_mismatch", "accuracy", ...). NCC mismatch uses the final
        class means (exact). Two passes over the features, O(NdK) time:
        Sigma_W is used only through its trace and in the span of the class
        means, never formed. Bad input: see the module docstring.
    """
    W = to_numpy(W, np.float64)
    K = W.shape[0] if num_classes is None else num_classes
    stats = InMemoryStatistics(K, features, labels, W, b)
    result = stats.measure(W, b)
    if minority_classes is not None:
        result.update(minority_metrics(stats, W, minority_classes))
    return result
