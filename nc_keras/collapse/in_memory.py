"""`metrics`: neural collapse of features held in memory, exactly, in two passes.

`InMemoryStatistics` forms the d x d within-class scatter only for the
ranks: NC1 needs Sigma_W only in the (K-1)-dim span of the class means,
the trace ratio and the CDNV only its per-class traces. The result dict and the bad-input
outcomes are `nc_keras.collapse.statistics`'s.
"""

import numpy as np

from nc_keras.collapse import formulas, tiles
from nc_keras.collapse.inputs import as_classifier, as_features, as_labels, finite_rows, to_numpy
from nc_keras.collapse.statistics import (
    _Statistics,
    class_square_sums,
    class_sums,
    minority_metrics,
    frame_scale,
)

__all__ = ["InMemoryStatistics", "metrics"]


class InMemoryStatistics(_Statistics):
    """Exact two-pass statistics of features held in memory; nothing to update.

    NC1 needs Sigma_W only in the (K-1)-dim span of the centred means, and
    the trace ratio only its trace, so with every feature at hand the d x d
    scatter is formed only for the ranks (`numerical_rank`,
    `effective_rank`: one O(Nd^2) product per measurement). The frame has
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

    # Bytes per block of centred features (`_centred_blocks`): the scatter's
    # product of each block with itself dominates, and blocks of a few
    # thousand rows keep both cores' BLAS threads busy (2 MB blocks took 1.5x
    # as long at N = 50,000, d = 512).
    _BLOCK_BYTES = 2**24

    def __init__(self, num_classes, features, labels, W=None, b=None, *,
                 absent_classes="nan", tile_bytes=None):
        super().__init__(num_classes, absent_classes, tile_bytes)
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
            self.scale = frame_scale(spread)
        self._means = means / self.scale
        self._h, self._y = h, y
        self._within = None
        self._scatter = None
        # Both argmins run over tiles of samples and classes: no (N, K) array.
        with tiles.tile_budget(self.tile_bytes):
            nearest = formulas.nearest_class_mean(h, self.class_means)
        self.num_ncc_labelled = y.shape[0]
        self.num_ncc_correct = int((nearest == y).sum())
        if W is not None:
            self._count_predictions(*as_classifier(W, b, self.num_classes, self.dim), nearest)

    def _class_means(self, h, y):
        """Counts (into `counts`) and class means relative to `shift` (K, d)."""
        present, counts, sums, _ = class_sums(h, y, self.shift if self._shifted else None)
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self.counts[present] = counts
        means = np.zeros((self.num_classes, self.dim))
        means[present] = sums / counts[:, None]
        return means

    def _count_predictions(self, W, b, nearest):
        with tiles.tile_budget(self.tile_bytes):
            predicted = formulas.classifier_predictions(self._h, W, b)
        self.num_ncc_compared = self._y.shape[0]
        self._count_correct(predicted, self._y)
        self.num_ncc_mismatch = int((nearest != predicted).sum())

    def _centred_blocks(self):
        """Yields (h_i - mu_k) / scale for blocks of rows, with their labels.

        Elementwise centring: h - mu_k is exact for h near mu_k (even far
        from the origin), whereas sum ||h||^2 - sum n_k ||mu_k||^2 cancels
        catastrophically in deep collapse (and h U - mu_k U does far from
        the origin).
        """
        means = self.scale * self._means  # relative to `shift`
        # A block and its gathered means: two block-sized arrays, within the tile budget.
        rows = max(64, min(self._BLOCK_BYTES, self.tile_bytes // 2) // (8 * self.dim))
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
            self._centred_pass()
        return self._within

    def _within_scatter(self):
        if self._scatter is None:
            self._centred_pass()
        return self._scatter

    def _centred_pass(self):
        """Per-class traces and the scatter (for the ranks) from one pass: O(N d^2)."""
        self._within = np.zeros(self.num_classes)
        self._scatter = np.zeros((self.dim, self.dim))
        for centred, labels in self._centred_blocks():
            self._within += class_square_sums(centred, labels, self.num_classes)
            self._scatter += centred.T @ centred

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


def metrics(features, labels, W, b=None, num_classes=None, minority_classes=None, *,
            absent_classes="nan", tile_bytes=None):
    """NC1-NC4 and the extras of in-memory features, exactly (Sec. 4, "Metrics").

    Args:
        features: (N, d) penultimate features (numpy or any backend tensor).
        labels: integer (N,) labels in [0, K).
        W: (K, d) classifier as in the paper (Keras Dense kernel transposed).
        b: (K,) bias, or None for a classifier without bias.
        num_classes: K; defaults to W.shape[0].
        minority_classes: class indices; with them, the result also has
            `MINORITY_KEYS` (minority_accuracy, minority_cosine).
        absent_classes: "nan" (default) or "skip": classes without a sample
            make the class-mean metrics NaN, or are left out (see
            `CollapseStatistics`); "skip" adds "num_classes_present".
        tile_bytes: the tile budget (default 256 MiB): no K x K array is
            formed, whatever K.
    Returns:
        dict of Python floats keyed by `METRIC_KEYS` ("nc1", "nc2", "nc3",
        "nc4", "ncc_mismatch", "accuracy", ...). NCC mismatch uses the final
        class means (exact). Two passes over the features, O(NdK + Nd^2)
        time: NC1..NC4 use Sigma_W only through its per-class traces and in
        the span of the class means (O(NdK)); the d x d scatter is formed
        once, for `numerical_rank` and `effective_rank` (O(Nd^2)). Bad
        input: see the module docstring.
    """
    W = to_numpy(W, np.float64)
    K = W.shape[0] if num_classes is None else num_classes
    stats = InMemoryStatistics(K, features, labels, W, b, absent_classes=absent_classes,
                               tile_bytes=tile_bytes)
    result = stats.measure(W, b)
    if minority_classes is not None:
        result.update(minority_metrics(stats, W, minority_classes))
    return result
