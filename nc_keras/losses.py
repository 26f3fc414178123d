r"""The four losses of nc_keras, one formula each, for training and for the UFM.

Neural collapse is not peculiar to cross-entropy: it also emerges, with the
same simplex-ETF geometry, under the MSE loss (Han et al., ICLR 2022; Zhou
et al., ICML 2022), label smoothing and the focal loss (Zhou et al.,
NeurIPS 2022, "Are all losses created equal?"). Each per-sample loss of
logits z and a target distribution y (one-hot e_y, or smoothed) is written
once here, as Keras writes its loss functions (`y_true, y_pred, axis`), and
serves both the unconstrained feature model of eq. (3) (`nc_keras.ufm`,
one sample per column: `axis=0`) and training (the Keras losses below, one
sample per row):

    cross_entropy:           log sum_j e^{z_j} - <y, z>           (eq. (3))
    half_squared_error:      (1/2) ||z - y||_2^2                  (Zhou et al., ICML 2022)
    smoothed_cross_entropy:  cross_entropy against (1 - a) y + a/K 1  (Szegedy et al. 2016)
    focal_cross_entropy:     (1 - p_y)^gamma (-log p_y), p = softmax(z)  (Lin et al. 2017)

The squared error is summed over the K outputs and halved, then averaged
over samples (the UFM convention of Zhou et al., whose logit gradient z - y
mirrors cross-entropy's softmax(z) - y); Keras's `MeanSquaredError` would
average over the K outputs instead, i.e. 2/K times this. Label smoothing
uses Keras's convention a/K for every class, the true one included; since
the smoothed target sums to 1 its loss is logsumexp(z) - <t, z> (no
target-entropy term). The focal loss has no class weight (alpha_t = 1);
gamma = 0 is cross-entropy. Every formula uses `keras.ops.logsumexp`,
`sum` and `expm1`, so none saturates to inf as the logits grow during
collapse, and float64 input stays float64 on every backend.

The Keras losses (`SparseHalfSquaredError`, `SparseSmoothedCrossentropy`,
`SparseFocalCrossentropy`) take what the data pipeline yields: integer
labels (B,) or (B, 1) and logits (B, K); cross-entropy training uses
`keras.losses.SparseCategoricalCrossentropy(from_logits=True)`, the same
formula.
"""

import keras

__all__ = [
    "SparseFocalCrossentropy",
    "SparseHalfSquaredError",
    "SparseSmoothedCrossentropy",
    "cross_entropy",
    "focal_cross_entropy",
    "half_squared_error",
    "smoothed_cross_entropy",
]


def cross_entropy(y_true, y_pred, axis=-1):
    """log sum_j exp(z_j) - <y, z> along `axis`: -log softmax(z)_y for one-hot y."""
    ops = keras.ops
    return ops.logsumexp(y_pred, axis=axis) - ops.sum(y_true * y_pred, axis=axis)


def half_squared_error(y_true, y_pred, axis=-1):
    """(1/2) ||z - y||^2 along `axis` (the 1/2 makes the logit gradient z - y)."""
    return keras.ops.sum((y_pred - y_true) ** 2, axis=axis) / 2


def smoothed_cross_entropy(y_true, y_pred, smoothing, axis=-1):
    """Cross-entropy against (1 - a) y + a/K 1, K the size of `axis`."""
    num_classes = y_pred.shape[axis]
    return cross_entropy((1.0 - smoothing) * y_true + smoothing / num_classes, y_pred, axis)


def focal_cross_entropy(y_true, y_pred, gamma, axis=-1):
    """(1 - p_y)^gamma u with u = -log p_y the cross-entropy.

    1 - p_y = -expm1(-u) keeps full precision where p_y is close to 1 (the
    regime of a well-separated optimum), where 1 - exp(-u) would cancel.
    """
    u = cross_entropy(y_true, y_pred, axis)
    if gamma == 0:
        return u
    return (-keras.ops.expm1(-u)) ** gamma * u


def _one_hot(y_true, num_classes):
    """e_y (B, K) float32 from integer labels of shape (B,) or (B, 1)."""
    labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
    return keras.ops.one_hot(labels, num_classes, dtype="float32")


def _float(logits):
    return keras.ops.cast(logits, "float32")


@keras.saving.register_keras_serializable(package="nc_keras")
class SparseHalfSquaredError(keras.losses.Loss):
    """(1/2) ||z - e_y||_2^2 per sample, averaged over the batch (Zhou et al., ICML 2022)."""

    def __init__(self, name="half_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return half_squared_error(_one_hot(y_true, keras.ops.shape(y_pred)[-1]), _float(y_pred))


@keras.saving.register_keras_serializable(package="nc_keras")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """-sum_k t_k log softmax(z)_k with t = (1 - alpha) e_y + alpha / K (Szegedy et al. 2016)."""

    def __init__(self, label_smoothing=0.1, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        targets = _one_hot(y_true, keras.ops.shape(y_pred)[-1])
        return smoothed_cross_entropy(targets, _float(y_pred), self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="nc_keras")
class SparseFocalCrossentropy(keras.losses.Loss):
    """-(1 - p_y)^gamma log p_y, p = softmax(z) (Lin et al., ICCV 2017; alpha_t = 1)."""

    def __init__(self, gamma=2.0, name="focal_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        targets = _one_hot(y_true, keras.ops.shape(y_pred)[-1])
        return focal_cross_entropy(targets, _float(y_pred), self.gamma)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}
