"""`CollapseStatistics`: the statistics of neural collapse, streamed batch by batch.

Memory O(Kd + d^2) whatever the number of samples; partial results from
shards or processes merge exactly (`merge`, `get_state`/`from_state`). The
result dict and the bad-input outcomes are `nc_keras.collapse.statistics`'s.
"""

import numpy as np

from nc_keras.collapse import formulas
from nc_keras.collapse.inputs import as_features, as_labels, as_logits, finite_rows, to_numpy
from nc_keras.collapse.statistics import (
    _Statistics,
    class_square_sums,
    class_sums,
    frame_scale,
)

__all__ = ["CollapseStatistics"]


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
    large, nearly equal numbers) ever appears. Between updates it keeps
    scratch arrays for the largest batch seen (two B x d and two P x d
    float64, P the classes of a batch), so a batch allocates nothing large.

    Everything is stored for h' = (h - shift) / scale, with `shift` the mean
    of the first batch and `scale` 1, or a power of two of its spread where
    squares would overflow or underflow (`frame_scale`), both kept:
    far from the origin (a global mean at 1e6) the running means stay small
    numbers, and h - shift is exact for h near the shift, so deep-collapse
    NC1 keeps its accuracy; features x 1e160 square without overflow. `means`,
    `scatter` and `within_covariance` give the features' units back.

    Each batch costs O(B d^2 + P d) for the P classes it holds, whatever K:
    only their rows of the means and traces are read and written. `measure`
    reads the K x d means tile by tile and never forms a K x K array
    (`nc_keras.collapse.tiles`), so K = 50,257 classes in d = 1,024
    dimensions need the statistics (412 MB of means) and one tile budget.

    Args:
        num_classes: K (an integer).
        dim: feature width d; taken from the first batch when None.
        absent_classes: "nan" (default): with a class that has no sample,
            the metrics that need every class mean are NaN (with a warning);
            "skip": every metric is computed over the classes that have
            samples, W and b restricted to their rows and K replaced by
            their number (logged as "num_classes_present"); accuracy and
            NCC mismatch still count the model's predictions over all K
            classes (predicting a class the data lacks is an error).
        tile_bytes: the tile budget of `measure` (default
            `nc_keras.collapse.tiles.DEFAULT_TILE_BYTES`, 256 MiB): the
            bytes of temporaries beyond the statistics themselves.
    """

    def __init__(self, num_classes, dim=None, *, absent_classes="nan", tile_bytes=None):
        super().__init__(num_classes, absent_classes, tile_bytes)
        self._scatter = None
        self._within = None
        self._scratch = {}
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

    def _buffer(self, name, rows):
        """A reusable (rows, d) float64 scratch array, kept between updates.

        At vocabulary scale every pass of `update` is over a B x d or P x d
        array, and a fresh array of megabytes costs its page faults each
        batch (measured: a quarter of an update at K = 50,257, d = 256).
        Scratch is not state: `get_state` and `merge` ignore it.
        """
        scratch = self._scratch.get(name)
        if scratch is None or scratch.shape[0] < rows or scratch.shape[1] != self.dim:
            scratch = self._scratch[name] = np.empty((rows, self.dim))
        return scratch[:rows]

    def _to_frame(self, h):
        """h' = (h - shift) / scale in float64, in scratch; the first batch sets shift and scale.

        Converts (float32 features) and centres in scratch; the
        scale (`frame_scale`: 1 unless squares could overflow or underflow,
        else a power of two) divides exactly in place.
        """
        if self.num_samples == 0:
            self.shift = h.mean(axis=0, dtype=np.float64)
        centred = self._buffer("rows", h.shape[0])
        np.copyto(centred, h)  # then subtract: faster than one mixed-dtype pass
        centred -= self.shift
        if self.num_samples == 0:
            self.scale = frame_scale(np.abs(centred).max() or np.abs(h).max())
        if self.scale != 1.0:
            centred /= self.scale
        return centred

    def update(self, features, labels, logits=None, *, predictions=None):
        """Adds one batch.

        Args:
            features: (B, d) penultimate features, numpy or any backend tensor.
            labels: integer (B,) labels in [0, K) (or (B, 1), or exact one-hot).
            logits: optional (B, K) classifier outputs (logits or
                probabilities: only their argmax is used) to count accuracy.
            predictions: optional (B,) predicted classes instead of
                `logits` (e.g. `formulas.classifier_predictions`, which
                never forms the (B, K) logits of many classes).
        Returns:
            self.
        """
        y = as_labels(labels, self.num_classes)
        h = as_features(features, y.shape[0], dtype=None)  # float64 in `_to_frame`
        self._check_dim(h.shape[1])
        predicted = self._predicted(logits, predictions, y.shape[0])
        finite = finite_rows(h)
        if not finite.all():
            self.num_nonfinite += int((~finite).sum())
            h, y = h[finite], y[finite]
            predicted = None if predicted is None else predicted[finite]
        if predicted is not None:
            self._count_correct(predicted, y)
        if y.shape[0] == 0:
            return self
        h = self._to_frame(h)
        present, counts_b, sums, inverse = class_sums(h, y)
        counts_a = self.counts[present]
        total = counts_a + counts_b
        # mode="clip" (the indices are valid) lets take write into scratch
        # unbuffered; every pass over a P x d or B x d array counts at
        # vocabulary scale, so the arithmetic is in place where it can be.
        means_a = np.take(self._means, present, axis=0, mode="clip",
                          out=self._buffer("means", present.size))
        delta = sums  # delta = mu_b - mu_a, in place of the sums
        delta *= (1.0 / counts_b)[:, None]
        delta -= means_a
        # Chan's merge folded into the centring: with
        # c_k = mu_a + (1 - sqrt(n_a / (n_a + n_b))) (mu_b - mu_a),
        # sum_i (h_i - c_k)(h_i - c_k)^T equals the batch's centred scatter
        # plus n_a n_b / (n_a + n_b) (mu_b - mu_a)(mu_b - mu_a)^T exactly.
        # c_k lies between the running and the batch mean, so h_i - c_k is of
        # the size of the within-class spread (no cancellation), and one
        # symmetric (syrk) product of B rows does everything; the same rows
        # give the per-class traces. Only the P classes of the batch are
        # touched: O(B d^2 + P d), whatever K.
        centres = np.multiply(delta, (1.0 - np.sqrt(counts_a / total))[:, None],
                              out=self._buffer("centres", present.size))
        centres += means_a
        rows = np.subtract(h, np.take(centres, inverse, axis=0, mode="clip",
                                      out=self._buffer("row_centres", h.shape[0])), out=h)
        self._scatter += rows.T @ rows
        self._within[present] += class_square_sums(rows, inverse, present.size)
        delta *= (counts_b / total)[:, None]
        means_a += delta
        self._means[present] = means_a
        self.counts[present] = total
        return self

    def _predicted(self, logits, predictions, num_samples):
        """(B,) predicted classes from `logits` or `predictions`, or None."""
        if logits is not None and predictions is not None:
            raise ValueError("pass logits or predictions, not both")
        if logits is not None:
            return np.argmax(as_logits(logits, num_samples, self.num_classes), axis=1)
        if predictions is None:
            return None
        predicted = np.asarray(to_numpy(predictions)).reshape(-1)
        if predicted.shape != (num_samples,) or not np.issubdtype(predicted.dtype, np.integer):
            raise ValueError(f"predictions must be ({num_samples},) integer classes; "
                             f"got {predicted.dtype} {predicted.shape}")
        return predicted

    def update_ncc(self, features, logits, class_means, *, predictions=None, labels=None):
        """Counts samples against reference class means (the NCC metrics).

        With `logits` or `predictions`: those whose argmax(logits) differs
        from the nearest class mean (``ncc_mismatch``); with `labels`: those
        whose nearest class mean is their label (``ncc_accuracy``). Both can
        be counted at once.

        Args:
            features: (B, d) features.
            logits: (B, K) classifier outputs, or None.
            class_means: (K, d) reference means (e.g. `self.class_means`
                after a full pass, for the exact value); rows of NaN (classes
                never seen) are never nearest.
            predictions: (B,) predicted classes instead of `logits`.
            labels: (B,) labels (as `update` takes them), or None.
        """
        h = as_features(features)
        predicted = self._predicted(logits, predictions, h.shape[0])
        y = None if labels is None else as_labels(labels, self.num_classes)
        if predicted is None and y is None:
            raise ValueError("update_ncc needs logits, predictions or labels")
        # Same samples as `update` keeps.
        finite = finite_rows(h)
        h = h[finite]
        means = np.asarray(class_means, dtype=np.float64)
        # One search for both counts.
        nearest = formulas.nearest_class_mean(h, means)
        if predicted is not None:
            self.num_ncc_compared += h.shape[0]
            self.num_ncc_mismatch += int((nearest != predicted[finite]).sum())
        if y is not None:
            self.num_ncc_labelled += h.shape[0]
            self.num_ncc_correct += int((nearest == y[finite]).sum())
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
    def from_state(cls, state, **settings):
        """The inverse of `get_state` (accepts an open np.load result).

        `settings`: the constructor's keyword arguments (`absent_classes`,
        `tile_bytes`), which are not part of the state.
        """
        stats = cls(int(state["num_classes"]), **settings)
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
        for name in cls._COUNTERS:  # counters added later are 0 in older states
            setattr(stats, name, int(state[name]) if name in state else 0)
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

    def _within_scatter(self):
        return self._scatter
