"""TensorBoard pictures of neural collapse: cosine matrices and norm histograms.

At each measurement of `NeuralCollapse`, beside the scalars that Keras's
TensorBoard callback writes from `logs`, this writes with `tf.summary`
(tensorflow is a dependency, whatever the Keras backend):

- image ``neural_collapse/class_mean_cosines``: the K x K cosines of the
  centred class means, m_k . m_l (Zhu et al. 2021, eq. (5); NC2 for the
  means), beside the simplex ETF's (1 on the diagonal, -1/(K-1) off it);
- image ``neural_collapse/classifier_vs_class_means``: cos(w_k, mu_l - mu_G)
  (self-duality, NC3), beside the same target;
- histograms ``neural_collapse/class_mean_norms`` (||mu_k - mu_G||) and, for
  the training data only since it does not depend on the data,
  ``neural_collapse/classifier_norms`` (||w_k||).

They go to `log_dir`/train and `log_dir`/validation, as Keras's TensorBoard
callback lays out its runs, at step = epoch (0-based, as Keras's epoch
scalars), all under "neural_collapse/" so they sit together. Matplotlib
(Agg, no display) renders the images.
"""

import os

import numpy as np

from nc_keras.collapse import formulas
from nc_keras.figures import new_figure

__all__ = ["CollapseSummaries", "cosine_image"]

_RUNS = {"": "train", "val_": "validation"}
# The cosine pictures show at most this many classes (the first ones): one
# pixel per pair, and a K x K array, would not do for a vocabulary.
MAX_IMAGE_CLASSES = 256


def cosine_image(panels, title):
    """An RGBA uint8 image (1, H, W, 4) of K x K matrices side by side.

    Args:
        panels: list of (name, matrix) with entries in [-1, 1].
        title: the figure's title.
    """
    # A Figure without pyplot: no global state, no display, thread-safe.
    figure = new_figure(figsize=(3.2 * len(panels) + 0.8, 3.4), dpi=80)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, matrix) in zip(axes, panels):
        shown = ax.imshow(matrix, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("class l", fontsize=8)
        ax.set_ylabel("class k", fontsize=8)
    figure.colorbar(shown, ax=list(axes), shrink=0.8)
    figure.suptitle(title, fontsize=10)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[None].copy()


class CollapseSummaries:
    """Writes the pictures (and optionally the scalars) of each measurement.

    Args:
        log_dir: the TensorBoard log directory; runs go to its "train" and
            "validation" subdirectories.
        scalars: also write every logged metric as a scalar "epoch_<key>"
            (as Keras's TensorBoard callback would), for a directory that
            no TensorBoard callback of the same fit writes into.
    """

    def __init__(self, log_dir, scalars=False):
        self.log_dir = str(log_dir)
        self.scalars = scalars
        self._writers = {}

    def _writer(self, prefix):
        import tensorflow as tf

        if prefix not in self._writers:
            self._writers[prefix] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, _RUNS[prefix]))
        return self._writers[prefix]

    def write(self, epoch, prefix, stats, W, logged):
        """One measurement: `stats` (a CollapseStatistics), W (K, d), `logged` {key: value}."""
        import tensorflow as tf
        means, counts = stats.class_means, stats.counts
        mu_G = formulas.global_mean(counts, np.nan_to_num(means))
        K = W.shape[0]
        # Pictures of K x K pixels: at most the first MAX_IMAGE_CLASSES classes.
        shown = min(K, MAX_IMAGE_CLASSES)
        Hbar = formulas.centred_means(means[:shown], mu_G)
        target = (K * np.eye(shown) - np.ones((shown, shown))) / (K - 1)  # the simplex ETF's
        with self._writer(prefix).as_default(step=epoch):
            tf.summary.image("neural_collapse/class_mean_cosines", cosine_image(
                [("m_k . m_l", formulas.means_cosines(Hbar)), ("simplex ETF", target)],
                "centred class means (NC2)"))
            tf.summary.image("neural_collapse/classifier_vs_class_means", cosine_image(
                [("cos(w_k, mu_l - mu_G)", formulas.classifier_means_cosines(W[:shown], Hbar)),
                 ("simplex ETF", target)], "classifier vs class means (NC3)"))
            tf.summary.histogram("neural_collapse/class_mean_norms",
                                 formulas.row_norms(means - mu_G))
            if not prefix:
                tf.summary.histogram("neural_collapse/classifier_norms",
                                     formulas.row_norms(W))
            if self.scalars:
                for key, value in logged.items():
                    tf.summary.scalar(f"epoch_{key[len(prefix):]}", value)
        self._writers[prefix].flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
