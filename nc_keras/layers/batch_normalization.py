"""`keras.layers.BatchNormalization` with torch's native kernel on torch."""

import keras

from nc_keras import backend


@keras.saving.register_keras_serializable(package="nc_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with one fused kernel on torch.

    Same arguments, weights and moving-statistics update as Keras's layer
    (`moving = momentum * moving + (1 - momentum) * batch`, with the biased
    batch variance). On the torch backend, float32 inputs normalized over
    their last axis (no mask, renorm or synchronization) go through
    `nc_keras.backend.fused_batch_norm`, torch's native batch norm: one pass
    for the statistics and one for the normalization, forward and backward,
    instead of about ten element-wise ops. The variance then comes from
    Welford's method rather than E[x^2] - E[x]^2, so results agree with
    Keras's to float32 rounding, not bit for bit. Every other case, and every
    other backend, is Keras's own `call`.
    """

    def call(self, inputs, training=None, mask=None):
        fusable = (
            mask is None
            and not self.renorm
            and not self.synchronized
            and self.axis in (-1, len(inputs.shape) - 1)
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
            and self.compute_dtype == "float32"
        )
        if fusable:
            training = bool(training and self.trainable)
            fused = backend.fused_batch_norm(
                inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.epsilon, training
            )
            if fused is not None:
                outputs, mean, variance = fused
                if training:
                    self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
                    self.moving_variance.assign(
                        self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
                    )
                return outputs
        return super().call(inputs, training=training, mask=mask)
