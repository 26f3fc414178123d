"""Neural-collapse metrics NC1-NC4 (Zhu et al., NeurIPS 2021, Sec. 4, "Metrics").

Definitions (SPEC section 3). With K classes, class means mu_k over the real
class counts n_k, global mean mu_G of all N features, and
Hbar = [mu_1 - mu_G, ..., mu_K - mu_G] (d x K), E = (I_K - 11^T/K)/sqrt(K-1):

    Sigma_W = (1/N) sum_k sum_i (h_ki - mu_k)(h_ki - mu_k)^T
    Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T
    NC1 = (1/K) trace(Sigma_W Sigma_B^+)             within-class variability
    NC2 = || W W^T / ||W W^T||_F - E ||_F              classifier -> simplex ETF
    NC3 = || W Hbar / ||W Hbar||_F - E ||_F            self-duality W ~ Hbar^T
    NC4 = || b + W mu_G ||_2                           bias collapse

Extras, in every result dict:

- ``ncc_mismatch``: share of samples whose prediction argmax(W h + b) differs
  from the nearest class mean argmin_k ||h - mu_k|| (Papyan et al.'s NC4; the
  paper's NC4 is the bias metric above). The class means are only final after
  a pass over the data, so this needs a second pass: `metrics` has all
  features in memory and is exact; `measure_model` does a second pass by
  default; the callback, by default, compares against the class means of its
  previous measurement (see `nc_keras.callbacks.NeuralCollapse`).
- ``accuracy``: share of samples with argmax(W h + b) equal to the label.
- ``means_etf_error``: || Hbar^T Hbar / ||Hbar^T Hbar||_F - E ||_F, the NC2
  distance for the centred class means instead of the classifier.
- ``means_norm_cv`` / ``classifier_norm_cv``: coefficient of variation
  (std / mean, population std) of ||mu_k - mu_G|| and of ||w_k||.
- ``trace_ratio``: tr(Sigma_W) / tr(Sigma_B).

Streaming. `CollapseStatistics` keeps float64 class counts, class means and
the pooled within-class scatter, O(Kd + d^2) memory whatever N is; `update`
and `merge` combine partial results with Chan et al.'s pairwise formula
(centred scatters plus a mean-difference correction), never raw second
moments, so NC1 keeps its relative accuracy in deep collapse, when the
within-class spread is many orders below the between-class spread.
`metrics`, with every feature in memory, never forms Sigma_W: NC1 needs it
only in the (K-1)-dim span of the class means, so it costs O(NdK).

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

__all__ = [
    "CollapseStatistics",
    "metrics",
    "measure",
    "measure_model",
    "classifier_weights",
    "feature_extractor",
    "iterate_batches",
    "gather_processes",
    "METRIC_KEYS",
]

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

# Up to this many classes in a batch, per-class masks beat sorting.
_MASKED_MAX_CLASSES = 64


def _to_numpy(x, dtype=None):
    if not isinstance(x, np.ndarray):
        import keras

        x = keras.ops.convert_to_numpy(x)
    return np.asarray(x, dtype=dtype)


def _as_labels(labels, num_classes):
    """Integer labels (N,) in [0, K); (N, 1) is squeezed, (N, K) one-hot argmaxed."""
    y = _to_numpy(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        y = np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(
            f"labels must have shape (N,), (N, 1) or one-hot (N, {num_classes}); "
            f"got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if y.dtype == bool or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"labels must be integers; got dtype {y.dtype}")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} label(s) outside [0, {num_classes}), e.g. "
            f"{sorted(set(y[bad][:5].tolist()))}; set num_classes or fix the labels"
        )
    return y


def _as_features(features, num_samples=None):
    h = _to_numpy(features, np.float64)
    if h.ndim != 2:
        raise ValueError(f"features must have shape (N, d); got {h.shape}")
    if num_samples is not None and h.shape[0] != num_samples:
        raise ValueError(
            f"features have {h.shape[0]} rows but labels have {num_samples}"
        )
    return h


def _class_sums(h, y, num_classes):
    """Per-class counts (K,) and feature sums (K, d) of one batch."""
    counts = np.bincount(y, minlength=num_classes)
    present = np.flatnonzero(counts)
    sums = np.zeros((num_classes, h.shape[1]))
    if present.size <= _MASKED_MAX_CLASSES:
        # Boolean masks copy each row once; a one-hot product is slower here
        # (thin BLAS shapes) and sorting costs an extra full copy.
        for k in present:
            sums[k] = h[y == k].sum(axis=0)
        return counts, sums
    order = np.argsort(y, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
    sums[present] = np.add.reduceat(h[order], starts, axis=0)
    return counts, sums


def _safe_norm_divide(matrix, what):
    norm = np.linalg.norm(matrix)
    if not norm > 0:
        warnings.warn(f"{what} is zero: its ETF distance is 0/0, reported as NaN",
                      RuntimeWarning, stacklevel=4)
        return None
    return matrix / norm


def _etf_distance(gram, what):
    """|| G / ||G||_F - E ||_F with E the unit-energy simplex ETF Gram (Sec. 4)."""
    k = gram.shape[0]
    g = _safe_norm_divide(gram, what)
    if g is None:
        return float("nan")
    etf = (np.eye(k) - np.full((k, k), 1.0 / k)) / np.sqrt(k - 1)
    return float(np.linalg.norm(g - etf))


def _cv(values):
    mean = values.mean()
    return float(values.std() / mean) if mean > 0 else float("nan")


class CollapseStatistics:
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
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2; got {num_classes}")
        self.num_classes = int(num_classes)
        self.dim = None
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self.means = None
        self.scatter = None
        self.num_nonfinite = 0  # samples dropped for NaN/inf features
        self.num_predicted = 0
        self.num_correct = 0
        self.num_ncc_compared = 0
        self.num_ncc_mismatch = 0
        if dim is not None:
            self._allocate(int(dim))

    def _allocate(self, dim):
        self.dim = dim
        self.means = np.zeros((self.num_classes, dim))
        self.scatter = np.zeros((dim, dim))

    @property
    def num_samples(self):
        return int(self.counts.sum())

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
        y = _as_labels(labels, self.num_classes)
        h = _as_features(features, y.shape[0])
        self._check_dim(h.shape[1])
        finite = np.isfinite(h).all(axis=1)
        if not finite.all():
            self.num_nonfinite += int((~finite).sum())
            h, y = h[finite], y[finite]
            logits = None if logits is None else _to_numpy(logits)[finite]
        if logits is not None:
            predicted = np.argmax(_to_numpy(logits), axis=1)
            self.num_predicted += y.shape[0]
            self.num_correct += int((predicted == y).sum())
        if y.shape[0] == 0:
            return self
        counts_b, sums = _class_sums(h, y, self.num_classes)
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
            class_means: (K, d) reference means (e.g. `self.means` after a
                full pass, for the exact value); rows of NaN (classes never
                seen) are never nearest.
        """
        h = _as_features(features)
        predicted = np.argmax(_to_numpy(logits), axis=1)
        # Same samples as `update` keeps.
        finite = np.isfinite(h).all(axis=1)
        h, predicted = h[finite], predicted[finite]
        means = np.asarray(class_means, dtype=np.float64)
        # argmin_k ||h - mu_k||^2 = argmin_k ||mu_k||^2 - 2 mu_k.h; dropping
        # ||h||^2 avoids an (B, K, d) tensor.
        distances = np.sum(means**2, axis=1) - 2.0 * (h @ means.T)
        distances[:, ~np.isfinite(means).all(axis=1)] = np.inf
        nearest = np.argmin(distances, axis=1)
        self.num_ncc_compared += h.shape[0]
        self.num_ncc_mismatch += int((nearest != predicted).sum())
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

    _COUNTERS = ("num_nonfinite", "num_predicted", "num_correct",
                 "num_ncc_compared", "num_ncc_mismatch")

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

    @property
    def class_means(self):
        """(K, d) class means; NaN rows for classes with no sample."""
        means = np.array(self.means, dtype=np.float64)
        means[self.counts == 0] = np.nan
        return means

    def within_covariance(self):
        """Sigma_W = S / N."""
        return self.scatter / max(self.num_samples, 1)

    def measure(self, W, b=None):
        """NC1-NC4 and the extras (module docstring) from these statistics.

        Args:
            W: (K, d) classifier, the transpose of a Keras Dense kernel.
            b: (K,) bias or None (zero).
        Returns:
            dict of Python floats with the keys `METRIC_KEYS`.
        """
        W = _to_numpy(W, np.float64)
        K = self.num_classes
        if W.ndim != 2 or W.shape[0] != K:
            raise ValueError(f"W must have shape ({K}, d); got {W.shape}")
        if self.dim is not None and W.shape[1] != self.dim:
            raise ValueError(
                f"W has width {W.shape[1]} but the features have {self.dim}"
            )
        b = np.zeros(K) if b is None else _to_numpy(b, np.float64).reshape(-1)
        if b.shape != (K,):
            raise ValueError(f"b must have shape ({K},); got {b.shape}")

        nan = float("nan")
        out = dict.fromkeys(METRIC_KEYS, nan)
        out["nc2"] = _etf_distance(W @ W.T, "W W^T")
        out["classifier_norm_cv"] = _cv(np.linalg.norm(W, axis=1))
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

        N = self.num_samples
        mu_G = self.counts @ self.means / N
        out["nc4"] = float(np.linalg.norm(b + W @ mu_G))
        empty = np.flatnonzero(self.counts == 0)
        if empty.size:
            warnings.warn(
                f"class(es) {empty[:10].tolist()} have no sample: NC1, NC3, "
                "NCC mismatch and the class-mean extras are NaN",
                RuntimeWarning, stacklevel=2)
            return out
        if self.num_ncc_compared:
            out["ncc_mismatch"] = self.num_ncc_mismatch / self.num_ncc_compared

        Hbar = (self.means - mu_G).T  # (d, K)
        # Hbar is a difference of means: its round-off is relative to the
        # means' size, so equal means must not pass for a tiny real spread.
        tolerance = _cutoff(Hbar.shape) * np.linalg.norm(self.means, axis=1).max()
        if not np.linalg.norm(Hbar, 2) > tolerance:
            warnings.warn(
                "all class means coincide (Sigma_B = 0): NC1, NC3 and the "
                "class-mean extras are NaN", RuntimeWarning, stacklevel=2)
            return out
        out["nc1"] = _nc1(self._within_projected, Hbar, tolerance)
        out["nc3"] = _etf_distance(W @ Hbar, "W Hbar")
        out["means_etf_error"] = _etf_distance(Hbar.T @ Hbar, "Hbar^T Hbar")
        norms = np.linalg.norm(Hbar, axis=0)
        out["means_norm_cv"] = _cv(norms)
        trace_b = float(np.sum(norms**2)) / K
        out["trace_ratio"] = self._within_trace() / trace_b if trace_b > 0 else nan
        return out

    def _within_trace(self):
        return float(np.trace(self.scatter)) / self.num_samples

    def _within_projected(self, U):
        """diag(U^T Sigma_W U) for orthonormal columns U."""
        return np.sum((self.scatter @ U) * U, axis=0) / self.num_samples


def _cutoff(shape):
    """numpy.linalg.pinv's relative singular-value cut-off for this shape."""
    return max(shape) * np.finfo(float).eps


def _nc1(within_projected, Hbar, tolerance):
    """(1/K) tr(Sigma_W Sigma_B^+) with Sigma_B = Hbar Hbar^T / K, rank <= K-1.

    Solved in the span of the centred means: with the thin SVD Hbar = U S V^T,
    Sigma_B^+ = K U S^-2 U^T, so NC1 = sum_j u_j^T Sigma_W u_j / s_j^2, and
    `within_projected(U)` gives the u_j^T Sigma_W u_j. Since
    sum_k n_k (mu_k - mu_G) = 0, Hbar has rank at most K-1: its K-th singular
    value is round-off and is dropped, as are those below numpy's pinv cut-off
    max(d, K) eps s_max, or below `tolerance` (round-off of the means), when
    the means are degenerate.
    """
    U, s, _ = np.linalg.svd(Hbar, full_matrices=False)
    rank = min(Hbar.shape[1] - 1, int(np.sum(s > max(_cutoff(Hbar.shape) * s[0], tolerance))))
    U, s = U[:, :rank], s[:rank]
    return float(within_projected(U) @ (1.0 / s**2))


class _InMemoryStatistics(CollapseStatistics):
    """Exact two-pass statistics of features held in memory.

    NC1 needs Sigma_W only in the (K-1)-dim span of the centred means, and
    the trace ratio only its trace, so with every feature at hand the d x d
    scatter is never formed: O(NdK) work instead of O(Nd^2).
    """

    # Centred chunks of about 2 MB stay in cache between their two uses.
    _CHUNK_BYTES = 2**21

    def __init__(self, num_classes, features, labels, W, b):
        super().__init__(num_classes)
        y = _as_labels(labels, self.num_classes)
        h = _as_features(features, y.shape[0])
        self._allocate(h.shape[1])
        finite = np.isfinite(h).all(axis=1)
        if not finite.all():
            self.num_nonfinite = int((~finite).sum())
            h, y = h[finite], y[finite]
        self.counts, sums = _class_sums(h, y, self.num_classes)
        present = self.counts > 0
        self.means[present] = sums[present] / self.counts[present, None]
        self._h, self._y = h, y
        if W.shape == self.means.shape:
            # Logits and the NCC inner products in one (N, d) x (d, 2K) product.
            scores = h @ np.concatenate([W, self.means]).T
            predicted = np.argmax(scores[:, :num_classes] + b, axis=1)
            self.num_predicted = y.shape[0]
            self.num_correct = int((predicted == y).sum())
            distances = np.sum(self.means**2, axis=1) - 2.0 * scores[:, num_classes:]
            distances[:, ~present] = np.inf
            self.num_ncc_compared = y.shape[0]
            self.num_ncc_mismatch = int((np.argmin(distances, axis=1) != predicted).sum())

    def _within_trace(self):
        # Elementwise centring, chunk by chunk: sum ||h||^2 - sum n_k ||mu_k||^2
        # would cancel catastrophically in deep collapse.
        trace = 0.0
        rows = max(64, self._CHUNK_BYTES // (8 * self.dim))
        for start in range(0, self._y.shape[0], rows):
            part = slice(start, start + rows)
            centred = self._h[part] - self.means[self._y[part]]
            trace += float(np.einsum("ij,ij->", centred, centred))
        return trace / self.num_samples

    def _within_projected(self, U):
        # (h - mu_k) U = h U - mu_k U: one large product instead of many
        # small ones; its round-off, O(eps ||h||), is that of centring h.
        centred = self._h @ U - (self.means @ U)[self._y]
        return np.einsum("ij,ij->j", centred, centred) / self.num_samples

    def update(self, *args, **kwargs):
        raise TypeError("in-memory statistics are final; use CollapseStatistics to stream")


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
    W = _to_numpy(W, np.float64)
    K = W.shape[0] if num_classes is None else int(num_classes)
    b_vec = np.zeros(K) if b is None else _to_numpy(b, np.float64).reshape(-1)
    if b_vec.shape != (K,):
        raise ValueError(f"b must have shape ({K},); got {b_vec.shape}")
    return _InMemoryStatistics(K, features, labels, W, b_vec).measure(W, b)


# ---------------------------------------------------------------------------
# Models and data: shared by `measure_model`, the callback and the CLI.


def classifier_weights(model):
    """(W, b) of the model's "classifier" layer: W = kernel^T (K, d), b or None."""
    try:
        layer = model.get_layer("classifier")
    except ValueError as error:
        raise ValueError(
            "the model has no layer named 'classifier' (the last linear "
            "layer, whose kernel is (d, K))"
        ) from error
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        raise ValueError(f"layer 'classifier' ({type(layer).__name__}) has no kernel")
    W = _to_numpy(kernel, np.float64).T
    bias = getattr(layer, "bias", None)
    b = None if bias is None else _to_numpy(bias, np.float64)
    return W, b


def feature_extractor(model):
    """A keras.Model from the model's inputs to [features, classifier output]."""
    import keras

    try:
        features = model.get_layer("features").output
        outputs = model.get_layer("classifier").output
    except (ValueError, AttributeError) as error:
        raise ValueError(
            "neural-collapse measurement needs a built functional model with "
            f"layers named 'features' and 'classifier' ({error})"
        ) from error
    # model.input keeps the structure (single tensor, list or dict) of the inputs.
    return keras.Model(model.input, [features, outputs], name="nc_features")


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - tensorflow is a dependency
        return False
    return isinstance(data, tf.data.Dataset)


def _split_batch(batch):
    if isinstance(batch, dict) or not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("data must yield (x, y) or (x, y, sample_weight) batches")
    return batch[0], batch[1]


def _slices(x, y, batch_size):
    for start in range(0, len(y), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def iterate_batches(data, batch_size=256, max_samples=None):
    """Yields (x, y) numpy batches from any data the NC measurement accepts.

    Args:
        data: a tf.data.Dataset of (x, y[, w]) batches, a keras.utils.PyDataset,
            or an (x, y) tuple of arrays (batched here by `batch_size`).
        max_samples: stop after this many samples (the first ones, in order:
            no sampling, so no random numbers are drawn).
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _is_tf_dataset(data):
        batches = _slices(*data, batch_size)
    elif _is_tf_dataset(data):
        if max_samples is None and data.cardinality() == -1:  # tf.data.INFINITE_CARDINALITY
            raise ValueError("the dataset repeats forever: pass max_samples")
        batches = (_split_batch(batch) for batch in data.as_numpy_iterator())
    elif hasattr(data, "__getitem__") and hasattr(data, "num_batches"):
        count = data.num_batches
        if count is None:
            raise ValueError("a PyDataset of unknown length cannot be measured")
        batches = (_split_batch(data[i]) for i in range(count))
    else:
        raise ValueError(
            "data must be a tf.data.Dataset, a keras.utils.PyDataset or an "
            f"(x, y) tuple of arrays; got {type(data).__name__}"
        )
    remaining = np.inf if max_samples is None else int(max_samples)
    for x, y in batches:
        if remaining <= 0:
            return
        y = _to_numpy(y)
        if len(y) > remaining:
            x = x[: int(remaining)] if not isinstance(x, dict) else {
                k: v[: int(remaining)] for k, v in x.items()}
            y = y[: int(remaining)]
        remaining -= len(y)
        yield x, y


# Model outputs are gathered into chunks of about this size before the
# float64 statistics: one large symmetric product is several times faster
# than many small ones (BLAS threading overhead), and memory stays bounded.
_CHUNK_BYTES = 16 * 2**20


def _process_outputs(predictor, data, batch_size, max_samples):
    """Yields (features, labels, logits) of this process's rows of each batch.

    Without a distribution, whole batches through `predict_on_batch`. Under
    data parallelism every process reads the same batches and keeps a
    contiguous 1/P of each; that share is zero-padded to the same multiple of
    the local replica count on every process (the collective forward pass
    needs equal shapes everywhere, and each device an equal slice) and the
    padding's outputs are dropped: no sample is counted twice or lost, the
    last partial batch included. Padding cannot change the other rows:
    inference is per sample (BatchNorm uses its moving statistics).
    """
    import keras

    rank, processes = predictor.process_index, predictor.process_count
    local = predictor.local_replicas
    for x, y in iterate_batches(data, batch_size, max_samples):
        if processes == 1 and local == 1:
            features, logits = predictor.predict(x)
            yield _to_numpy(features).reshape(len(y), -1), y, _to_numpy(logits)
            continue
        share = -(-len(y) // processes)
        start, stop = min(rank * share, len(y)), min((rank + 1) * share, len(y))
        padded = -(-share // local) * local
        x = keras.tree.map_structure(lambda a: _zero_pad(_to_numpy(a)[start:stop], padded), x)
        features, logits = predictor.predict(x)
        count = stop - start
        features = _to_numpy(features).reshape(padded, -1)[:count]
        yield features, y[start:stop], _to_numpy(logits)[:count]


def _zero_pad(rows, size):
    padding = np.zeros((size - len(rows),) + rows.shape[1:], rows.dtype)
    return np.concatenate([rows, padding])


def _feature_chunks(predictor, data, batch_size, max_samples):
    """Yields (features, labels, logits) numpy chunks of whole batches."""
    parts, size = [], 0
    for features, y, logits in _process_outputs(predictor, data, batch_size, max_samples):
        parts.append((features, y, logits))
        size += features.nbytes
        if size >= _CHUNK_BYTES:
            yield tuple(np.concatenate(column) for column in zip(*parts))
            parts, size = [], 0
    if parts:
        yield tuple(np.concatenate(column) for column in zip(*parts))


def _predictor(extractor, predictor, model=None):
    """`predictor`, or the active distribution's way to run `extractor`."""
    if predictor is not None:
        return predictor
    from nc_keras import backend

    return backend.sharded_predictor(extractor if model is None else model, extractor)


def accumulate(extractor, data, num_classes, *, batch_size=256, max_samples=None,
               ncc_means=None, stats=None, predictor=None):
    """One pass of `extractor` (from `feature_extractor`) over `data`.

    Runs the extractor with training=False (BatchNorm uses its moving
    statistics, Dropout is off, no random numbers are drawn) and streams its
    outputs into `stats` (a new `CollapseStatistics` when None), in chunks of
    at most a few batches (`_CHUNK_BYTES`). When `ncc_means` (K, d) is given,
    also counts NCC mismatches against it. Under a distribution (see
    `nc_keras.backend.sharded_predictor`) the result covers this process's
    share of `data` only; `gather_processes` combines the shares.
    """
    predictor = _predictor(extractor, predictor)
    stats = CollapseStatistics(num_classes) if stats is None else stats
    for features, y, logits in _feature_chunks(predictor, data, batch_size, max_samples):
        stats.update(features, y, logits)
        if ncc_means is not None:
            stats.update_ncc(features, logits, ncc_means)
    return stats


def ncc_pass(extractor, data, stats, *, batch_size=256, max_samples=None,
             means=None, predictor=None):
    """Second pass: exact NCC mismatch against `means` (default: those of `stats`)."""
    predictor = _predictor(extractor, predictor)
    means = stats.class_means if means is None else means
    for features, _, logits in _feature_chunks(predictor, data, batch_size, max_samples):
        stats.update_ncc(features, logits, means)
    return stats


def gather_processes(stats, allgather):
    """`stats` merged over all processes of a multi-process run.

    `allgather(vector)` (e.g. `nc_keras.backend.ShardedPredictor.allgather`)
    exchanges one float64 vector per process and returns them all, stacked
    in process order (P, n); the shards are merged in that order, so every
    process ends with the same statistics, bit for bit. With one process
    `stats` itself comes back.
    """
    state = stats.get_state()
    keys = sorted(state)
    shapes = [np.shape(state[key]) for key in keys]
    vector = np.concatenate([np.asarray(state[key], np.float64).ravel() for key in keys])
    rows = allgather(vector)
    if len(rows) == 1:
        return stats
    bounds = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]
    merged = CollapseStatistics(stats.num_classes, stats.dim)
    for row in rows:
        pieces = np.split(row, bounds)
        merged.merge(CollapseStatistics.from_state(
            {key: piece.reshape(shape) for key, piece, shape in zip(keys, pieces, shapes)}))
    return merged


def measure(extractor, model, data, *, batch_size=256, max_samples=None,
            ncc="exact", ncc_means=None, predictor=None):
    """Streams `data` through `extractor` and measures; returns (metrics, stats).

    `ncc`: "exact" (a second pass against the final class means), "given"
    (against `ncc_means`, in the same pass) or "none" (ncc_mismatch NaN).
    `predictor` (default: `nc_keras.backend.sharded_predictor` for the
    active distribution) runs the extractor; under data parallelism each
    process measures its share of every batch and the statistics of all
    processes are merged, so the metrics equal a single-device pass.
    """
    W, b = classifier_weights(model)
    predictor = _predictor(extractor, predictor, model)
    given = ncc_means if ncc == "given" else None
    options = dict(batch_size=batch_size, max_samples=max_samples, predictor=predictor)
    stats = accumulate(extractor, data, W.shape[0], ncc_means=given,
                       stats=CollapseStatistics(*W.shape), **options)
    several = predictor.process_count > 1
    if several:
        stats = gather_processes(stats, predictor.allgather)
    if ncc == "exact":
        # Each process compares its share with the merged means.
        counted = ncc_pass(extractor, data, CollapseStatistics(*W.shape),
                           means=stats.class_means, **options)
        stats.merge(gather_processes(counted, predictor.allgather) if several else counted)
    return stats.measure(W, b), stats


def measure_model(model, data, *, batch_size=256, max_samples=None, ncc="exact"):
    """NC1-NC4 and the extras of a trained model on `data`, offline.

    Args:
        model: a functional Keras model with layers named "features" (the
            penultimate output the classifier consumes) and "classifier"
            (kernel (d, K), bias or None).
        data: a tf.data.Dataset of (x, y) batches, a keras.utils.PyDataset, or
            an (x, y) tuple of arrays.
        ncc: "exact" (default) makes a second pass over `data` for the NCC
            mismatch against the final class means; "none" skips it (NaN).
    Returns:
        dict of Python floats keyed by `METRIC_KEYS`, plus "num_samples".
    """
    if ncc not in ("exact", "none"):
        raise ValueError(f"ncc must be 'exact' or 'none'; got {ncc!r}")
    result, stats = measure(feature_extractor(model), model, data,
                            batch_size=batch_size, max_samples=max_samples, ncc=ncc)
    result["num_samples"] = float(stats.num_samples)
    return result
