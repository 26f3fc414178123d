"""The training losses: cross-entropy, MSE, label smoothing and focal loss.

Neural collapse is not peculiar to cross-entropy: it also emerges, with the
same simplex-ETF geometry, under the MSE loss (Han et al., ICLR 2022; Zhou
et al., ICML 2022), label smoothing and the focal loss (Zhou et al.,
NeurIPS 2022, "Are all losses created equal?"). `build_loss(config)` gives
the Keras loss of `TrainConfig.loss`; `model.compile` (SGD, Adam) and the
L-BFGS objective (`fit_lbfgs`) both use it, so every optimizer minimizes the
same function.

Every loss takes what the data pipeline yields: integer labels y (shape
(B,) or (B, 1)) and logits z = W h + b (B, K). It converts y to one-hot e_y
inside and returns the mean over the batch of a per-sample loss:

    ce:               -log p_y,                   p = softmax(z)
    mse:              (1/2) ||z - e_y||_2^2       (summed over the K outputs)
    label_smoothing:  -sum_k t_k log p_k,         t = (1 - alpha) e_y + alpha/K
    focal:            -(1 - p_y)^gamma log p_y    (Lin et al., ICCV 2017)

MSE follows the unconstrained-feature-model convention of Zhou et al. (ICML
2022, "On the optimization landscape of neural collapse under MSE loss"):
targets are the one-hot vectors e_y themselves (no rescaling), the squared
error is summed over the K outputs and halved, then averaged over samples;
Keras's `MeanSquaredError` would instead average over the K outputs, i.e.
2/K times this. Label smoothing (Szegedy et al., CVPR 2016) uses Keras's
convention alpha/K for every class, including the true one. The focal loss
has no class weight alpha_t (alpha_t = 1); gamma = 0 is cross-entropy.
Log-probabilities come from `log_softmax`, never log(softmax), so that none
of these saturates to inf as the logits grow during collapse.
"""

import keras

LOSSES = ("ce", "mse", "label_smoothing", "focal")

__all__ = [
    "LOSSES",
    "SparseFocalCrossentropy",
    "SparseHalfSquaredError",
    "SparseSmoothedCrossentropy",
    "build_loss",
    "check_loss",
    "make_loss",
]


def _one_hot(y_true, num_classes):
    """e_y (B, K) float32 from integer labels of shape (B,) or (B, 1)."""
    labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
    return keras.ops.one_hot(labels, num_classes, dtype="float32")


def _log_probabilities(logits):
    return keras.ops.log_softmax(keras.ops.cast(logits, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="nc_keras")
class SparseHalfSquaredError(keras.losses.Loss):
    """(1/2) ||z - e_y||_2^2 per sample, averaged over the batch (Zhou et al., ICML 2022)."""

    def __init__(self, name="half_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        targets = _one_hot(y_true, keras.ops.shape(y_pred)[-1])
        residual = keras.ops.cast(y_pred, "float32") - targets
        return 0.5 * keras.ops.sum(keras.ops.square(residual), axis=-1)


@keras.saving.register_keras_serializable(package="nc_keras")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """-sum_k t_k log softmax(z)_k with t = (1 - alpha) e_y + alpha / K (Szegedy et al. 2016)."""

    def __init__(self, label_smoothing=0.1, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        num_classes = keras.ops.shape(y_pred)[-1]
        alpha = self.label_smoothing
        targets = (1.0 - alpha) * _one_hot(y_true, num_classes) + alpha / num_classes
        return -keras.ops.sum(targets * _log_probabilities(y_pred), axis=-1)

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
        log_p_y = keras.ops.sum(targets * _log_probabilities(y_pred), axis=-1)
        # 1 - p_y as -expm1(log p_y): exact when p_y is close to 1.
        return -keras.ops.power(-keras.ops.expm1(log_p_y), self.gamma) * log_p_y

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


def check_loss(loss, label_smoothing=0.1, focal_gamma=2.0):
    """`ValueError` for an unknown loss or a parameter out of its range."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}.")
    if not focal_gamma >= 0.0:
        raise ValueError(f"focal_gamma must be >= 0; got {focal_gamma}.")


def make_loss(loss="ce", label_smoothing=0.1, focal_gamma=2.0):
    """The Keras loss `loss` (one of `LOSSES`) on integer labels and logits.

    `label_smoothing` (alpha) is used by "label_smoothing" only, and
    `focal_gamma` (gamma) by "focal" only.
    """
    check_loss(loss, label_smoothing, focal_gamma)
    if loss == "ce":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loss == "mse":
        return SparseHalfSquaredError()
    if loss == "label_smoothing":
        return SparseSmoothedCrossentropy(label_smoothing)
    return SparseFocalCrossentropy(focal_gamma)


def build_loss(config):
    """The loss of a `TrainConfig`: `make_loss(config.loss, ...)`."""
    return make_loss(config.loss, config.label_smoothing, config.focal_gamma)
