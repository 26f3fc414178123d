"""The statistics that neural-collapse metrics are computed from.

NC1-NC4 (Zhu et al. 2021, Sec. 4; `nc_keras.collapse.formulas`) need only
the class counts n_k, the class means mu_k and the within-class scatter
S = sum_k sum_i (h_ki - mu_k)(h_ki - mu_k)^T = N Sigma_W, and only through
tr(Sigma_W) and u^T Sigma_W u for u in the span of the centred means. Two
ways to get them:

- `CollapseStatistics` streams: float64 counts, means and S, O(Kd + d^2)
  memory whatever N is, updated batch by batch and merged across shards
  with Chan et al.'s pairwise formula (centred scatters plus a
  mean-difference correction), never raw second moments, so NC1 keeps its
  relative accuracy in deep collapse, when the within-class spread is many
  orders below the between-class spread.
- `InMemoryStatistics` (behind `metrics`) holds every feature: it never
  forms S, since NC1 needs Sigma_W only in the (K-1)-dim span of the class
  means and the trace ratio only its trace; O(NdK) work.

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
- ``trace_ratio``: tr(Sigma_W) / tr(Sigma_B).

Outcomes for bad input (never a silent number):

- labels outside [0, K) or not integers: ``ValueError`` naming them;
- NaN or infinite features: ``RuntimeWarning`` once per measurement and NaN
  for every metric that depends on the features (NC2, the classifier norm
  CV and the accuracy of the finite samples are still reported); the
  offending samples are counted, not used;
- a class with no sample: ``RuntimeWarning`` naming it and NaN for every
  metric that needs all class means (NC1, NC3, ncc_mismatch, means_etf_error,
  means_norm_cv, trace_ratio); NC2, NC4 and accuracy are still reported;
- all class means equal up to round-off (Sigma_B = 0): NC1, NC3 and the
  class-mean extras are 0/0, reported as NaN with a ``RuntimeWarning``; so is
  NC2 (or NC3) for W = 0 (or W Hbar = 0).
"""

import warnings

import numpy as np

from nc_keras.collapse import formulas
from nc_keras.collapse.inputs import as_classifier, as_features, as_labels, finite_rows, to_numpy

__all__ = ["CollapseStatistics", "FEATURE_ONLY_KEYS", "InMemoryStatistics", "METRIC_KEYS",
           "class_sums", "metrics"]

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
)
# The keys that depend on the features alone, not on W or b: what
# intermediate layers are measured by (`measure()` without a classifier).
# Every new feature-only metric belongs here too.
FEATURE_ONLY_KEYS = ("nc1", "means_etf_error", "means_norm_cv", "trace_ratio")

# Up to this many classes in a batch, per-class masks beat sorting.
_MASKED_MAX_CLASSES = 64


def class_sums(features, labels, num_classes):
    """Per-class counts (K,) and feature sums (K, d) of one batch."""
    counts = np.bincount(labels, minlength=num_classes)
    present = np.flatnonzero(counts)
    sums = np.zeros((num_classes, features.shape[1]))
    if present.size <= _MASKED_MAX_CLASSES:
        # Boolean masks copy each row once; a one-hot product is slower here
        # (thin BLAS shapes) and sorting costs an extra full copy.
        for k in present:
            sums[k] = features[labels == k].sum(axis=0)
        return counts, sums
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
    sums[present] = np.add.reduceat(features[order], starts, axis=0)
    return counts, sums


class _Statistics:
    """What the metrics read, and `measure`, which reads it.

    Subclasses fill `counts` (K,), `means` (K, d), `dim` and the counters,
    and give the within-class scatter through `within_trace` and
    `within_projected`.
    """

    _COUNTERS = ("num_nonfinite", "num_predicted", "num_correct",
                 "num_ncc_compared", "num_ncc_mismatch")

    def __init__(self, num_classes):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2; got {num_classes}")
        self.num_classes = int(num_classes)
        self.dim = None
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self.means = None
        self.num_nonfinite = 0  # samples dropped for NaN/inf features
        self.num_predicted = 0
        self.num_correct = 0
        self.num_ncc_compared = 0
        self.num_ncc_mismatch = 0

    @property
    def num_samples(self):
        return int(self.counts.sum())

    @property
    def class_means(self):
        """(K, d) class means; NaN rows for classes with no sample."""
        means = np.array(self.means, dtype=np.float64)
        means[self.counts == 0] = np.nan
        return means

    def within_trace(self):
        """tr(Sigma_W)."""
        raise NotImplementedError

    def within_projected(self, U):
        """diag(U^T Sigma_W U) for orthonormal columns U (d, r)."""
        raise NotImplementedError

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
        if W is not None:
            W, b = as_classifier(W, b, self.num_classes, self.dim)
            out["nc2"] = formulas.nc2(W)
            out["classifier_norm_cv"] = formulas.classifier_norm_cv(W)
        if self.num_predicted:
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

        mu_G = formulas.global_mean(self.counts, self.means)
        if W is not None:
            out["nc4"] = formulas.nc4(W, b, mu_G)
        empty = np.flatnonzero(self.counts == 0)
        if empty.size:
            warnings.warn(
                f"class(es) {empty[:10].tolist()} have no sample: NC1, NC3, "
                "NCC mismatch and the class-mean extras are NaN",
                RuntimeWarning, stacklevel=2)
            return out
        if self.num_ncc_compared:
            out["ncc_mismatch"] = self.num_ncc_mismatch / self.num_ncc_compared

        Hbar = formulas.centred_means(self.means, mu_G)
        tolerance = formulas.rounding_level(self.means)
        if not np.linalg.norm(Hbar, 2) > tolerance:
            warnings.warn(
                "all class means coincide (Sigma_B = 0): NC1, NC3 and the "
                "class-mean extras are NaN", RuntimeWarning, stacklevel=2)
            return out
        out["nc1"] = formulas.nc1(self.within_projected, Hbar, tolerance)
        if W is not None:
            out["nc3"] = formulas.nc3(W, Hbar)
        out["means_etf_error"] = formulas.means_etf_error(Hbar)
        out["means_norm_cv"] = formulas.means_norm_cv(Hbar)
        out["trace_ratio"] = formulas.trace_ratio(self.within_trace(), Hbar)
        return out


class CollapseStatistics(_Statistics):
    """Sufficient statistics for NC1-NC4, accumulated batch by batch.

    Keeps, in float64: the class counts n_k (K,), the class means mu_k (K, d)
    and the pooled within-class scatter S = sum_k sum_i (h_ki - mu_k)(...)^T
    (d, d), so memory is O(Kd + d^2) whatever the number of samples; plus
    counters for accuracy and NCC mismatch. Two partial results combine
    exactly with Chan et al.'s pairwise update: for each class,

        S = S_a + S_b + n_a n_b / (n_a + n_b) (mu_b - mu_a)(mu_b - mu_a)^T,

    summed over classes. `update` folds this correction into the centring of
    the batch (see its comment), so each batch costs one (d x B)(B x d)
    symmetric product; no raw second moment (and no cancellation between
    large, nearly equal numbers) ever appears.

    Args:
        num_classes: K.
        dim: feature width d; taken from the first batch when None.
    """

    def __init__(self, num_classes, dim=None):
        super().__init__(num_classes)
        self.scatter = None
        if dim is not None:
            self._allocate(int(dim))

    def _allocate(self, dim):
        self.dim = dim
        self.means = np.zeros((self.num_classes, dim))
        self.scatter = np.zeros((dim, dim))

    def _check_dim(self, dim):
        if self.dim is None:
            self._allocate(dim)
        elif dim != self.dim:
            raise ValueError(f"feature width {dim} does not match {self.dim}")

    def update(self, features, labels, logits=None):
        """Adds one batch.

        Args:
            features: (B, d) penultimate features, numpy or any backend tensor.
            labels: integer (B,) labels in [0, K) (or (B, 1), or one-hot).
            logits: optional (B, K) classifier outputs (logits or
                probabilities: only their argmax is used) to count accuracy.
        Returns:
            self.
        """
        y = as_labels(labels, self.num_classes)
        h = as_features(features, y.shape[0])
        self._check_dim(h.shape[1])
        finite = finite_rows(h)
        if not finite.all():
            self.num_nonfinite += int((~finite).sum())
            h, y = h[finite], y[finite]
            logits = None if logits is None else to_numpy(logits)[finite]
        if logits is not None:
            predicted = np.argmax(to_numpy(logits), axis=1)
            self.num_predicted += y.shape[0]
            self.num_correct += int((predicted == y).sum())
        if y.shape[0] == 0:
            return self
        counts_b, sums = class_sums(h, y, self.num_classes)
        present = counts_b > 0
        counts_a, total = self.counts[present], self.counts[present] + counts_b[present]
        delta = sums[present] / counts_b[present, None] - self.means[present]
        # Chan's merge folded into the centring: with
        # c_k = mu_a + (1 - sqrt(n_a / (n_a + n_b))) (mu_b - mu_a),
        # sum_i (h_i - c_k)(h_i - c_k)^T equals the batch's centred scatter
        # plus n_a n_b / (n_a + n_b) (mu_b - mu_a)(mu_b - mu_a)^T exactly.
        # c_k lies between the running and the batch mean, so h_i - c_k is of
        # the size of the within-class spread (no cancellation), and one
        # symmetric (syrk) product of B rows does everything.
        centres = np.zeros_like(sums)
        centres[present] = self.means[present] + delta * (
            1.0 - np.sqrt(counts_a / total))[:, None]
        rows = h - centres[y]
        self.scatter += rows.T @ rows
        self.means[present] += delta * (counts_b[present] / total)[:, None]
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
        predicted = np.argmax(to_numpy(logits), axis=1)
        # Same samples as `update` keeps.
        finite = finite_rows(h)
        h, predicted = h[finite], predicted[finite]
        means = np.asarray(class_means, dtype=np.float64)
        self.num_ncc_compared += h.shape[0]
        self.num_ncc_mismatch += formulas.ncc_mismatches(predicted, h, means)
        return self

    def _merge(self, counts_b, means_b, scatter_b):
        counts_a = self.counts
        total = counts_a + counts_b
        both = (counts_a > 0) & (counts_b > 0)
        delta = means_b - self.means
        weight = np.zeros(self.num_classes)
        weight[both] = counts_a[both] * counts_b[both] / total[both]
        correction = delta[both] * np.sqrt(weight[both])[:, None]
        self.scatter += scatter_b + correction.T @ correction
        nonzero = total > 0
        self.means[nonzero] += delta[nonzero] * (counts_b[nonzero] / total[nonzero])[:, None]
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
            self._merge(other.counts, other.means, other.scatter)
        for name in self._COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def get_state(self):
        """A dict of numpy arrays (e.g. for np.savez), to merge on another host."""
        state = {"num_classes": np.int64(self.num_classes), "counts": self.counts.copy()}
        if self.dim is not None:
            state.update(means=self.means.copy(), scatter=self.scatter.copy())
        state.update({name: np.int64(getattr(self, name)) for name in self._COUNTERS})
        return state

    @classmethod
    def from_state(cls, state):
        """The inverse of `get_state` (accepts an open np.load result)."""
        stats = cls(int(state["num_classes"]))
        stats.counts = np.array(state["counts"], dtype=np.int64)
        if "means" in state:
            stats.dim = int(np.shape(state["means"])[1])
            stats.means = np.array(state["means"], dtype=np.float64)
            stats.scatter = np.array(state["scatter"], dtype=np.float64)
        for name in cls._COUNTERS:
            setattr(stats, name, int(state[name]))
        return stats

    def within_covariance(self):
        """Sigma_W = S / N."""
        return self.scatter / max(self.num_samples, 1)

    def within_trace(self):
        return float(np.trace(self.scatter)) / self.num_samples

    def within_projected(self, U):
        return np.sum((self.scatter @ U) * U, axis=0) / self.num_samples


class InMemoryStatistics(_Statistics):
    """Exact two-pass statistics of features held in memory; nothing to update.

    NC1 needs Sigma_W only in the (K-1)-dim span of the centred means, and
    the trace ratio only its trace, so with every feature at hand the d x d
    scatter is never formed: O(NdK) work instead of O(Nd^2).

    Args:
        num_classes: K.
        features: (N, d) features, numpy or any backend tensor.
        labels: integer (N,) labels in [0, K) (or (N, 1), or one-hot).
        W: (K, d) classifier, or None; with it, the accuracy and the exact
            NCC mismatch are counted too.
        b: (K,) bias, or None (zero).
    """

    # Centred blocks of about 2 MB stay in cache between their two uses.
    _TRACE_BLOCK_BYTES = 2**21

    def __init__(self, num_classes, features, labels, W=None, b=None):
        super().__init__(num_classes)
        y = as_labels(labels, self.num_classes)
        h = as_features(features, y.shape[0])
        self.dim = h.shape[1]
        finite = finite_rows(h)
        if not finite.all():
            self.num_nonfinite = int((~finite).sum())
            h, y = h[finite], y[finite]
        self.counts, sums = class_sums(h, y, self.num_classes)
        present = self.counts > 0
        self.means = np.zeros((self.num_classes, self.dim))
        self.means[present] = sums[present] / self.counts[present, None]
        self._h, self._y = h, y
        if W is not None:
            self._count_predictions(*as_classifier(W, b, self.num_classes, self.dim))

    def _count_predictions(self, W, b):
        # Logits and the NCC inner products in one (N, d) x (d, 2K) product.
        K, h, y = self.num_classes, self._h, self._y
        scores = h @ np.concatenate([W, self.means]).T
        predicted = np.argmax(scores[:, :K] + b, axis=1)
        self.num_predicted = self.num_ncc_compared = y.shape[0]
        self.num_correct = int((predicted == y).sum())
        self.num_ncc_mismatch = formulas.ncc_mismatches(
            predicted, h, self.class_means, products=scores[:, K:])

    def within_trace(self):
        # Elementwise centring, block by block: sum ||h||^2 - sum n_k ||mu_k||^2
        # would cancel catastrophically in deep collapse.
        trace = 0.0
        rows = max(64, self._TRACE_BLOCK_BYTES // (8 * self.dim))
        for start in range(0, self._y.shape[0], rows):
            part = slice(start, start + rows)
            centred = self._h[part] - self.means[self._y[part]]
            trace += float(np.einsum("ij,ij->", centred, centred))
        return trace / self.num_samples

    def within_projected(self, U):
        # (h - mu_k) U = h U - mu_k U: one large product instead of many
        # small ones; its round-off, O(eps ||h||), is that of centring h.
        centred = self._h @ U - (self.means @ U)[self._y]
        return np.einsum("ij,ij->j", centred, centred) / self.num_samples


def metrics(features, labels, W, b=None, num_classes=None):
    """NC1-NC4 and the extras of in-memory features, exactly (Sec. 4, "Metrics").

    Args:
        features: (N, d) penultimate features (numpy or any backend tensor).
        labels: integer (N,) labels in [0, K).
        W: (K, d) classifier as in the paper (Keras Dense kernel transposed).
        b: (K,) bias, or None for a classifier without bias.
        num_classes: K; defaults to W.shape[0].
    Returns:
        dict of Python floats keyed by `METRIC_KEYS` ("nc1", "nc2", "nc3",
        "nc4", "ncc_mismatch", "accuracy", ...). NCC mismatch uses the final
        class means (exact). Two passes over the features, O(NdK) time:
        Sigma_W is used only through its trace and in the span of the class
        means, never formed. Bad input: see the module docstring.
    """
    W = to_numpy(W, np.float64)
    K = W.shape[0] if num_classes is None else int(num_classes)
    return InMemoryStatistics(K, features, labels, W, b).measure(W, b)
