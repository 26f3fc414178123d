"""The unconstrained feature model's penalty on a network's features.

`FeatureDecay` puts the lambda_H/2 ||H||_F^2 of eq. (3) (Zhu et al. 2021)
on the penultimate features of a network (the paper's appendix experiment)
and names the layer the NC tools read the features from.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nc_keras")
class FeatureDecay(keras.layers.Layer):
    """Identity on the features; adds their weight decay to the loss.

    In training, adds `lambda_h / 2 * mean_i ||h_i||^2` over the batch, where
    h_i are this layer's raw (un-normalized) inputs. Summed over an epoch of
    N samples in batches, that is lambda_h / (2N) ||H||_F^2 per sample of
    the averaged loss, i.e. eq. (3)'s penalty lambda_H / 2 ||H||_F^2 with
    lambda_H = lambda_h / N. The per-sample mean is used because the
    cross-entropy is a per-sample mean too: the balance between the two
    terms then does not depend on the batch size, and a stochastic gradient
    of the batch objective is an unbiased estimate of the full one.

    The paper's public code penalized L2-normalized features, which have
    constant norm and so no gradient: this layer penalizes the raw features.

    With `lambda_h=0` the layer is a plain identity; the model builders use
    it as the layer named `"features"` so that the NC tools find the
    penultimate features in every model.

    Args:
        lambda_h: the decay coefficient (>= 0). Defaults to 0.
        **kwargs: base `Layer` arguments.
    """

    def __init__(self, lambda_h=0.0, **kwargs):
        super().__init__(**kwargs)
        lambda_h = float(lambda_h)
        if not lambda_h >= 0:
            raise ValueError(f"lambda_h must be >= 0; got {lambda_h}.")
        self.lambda_h = lambda_h
        self.supports_masking = True

    def call(self, inputs, training=None):
        if training and self.lambda_h > 0:
            squared_norms = ops.sum(ops.square(inputs), axis=-1)
            self.add_loss(0.5 * self.lambda_h * ops.mean(squared_norms))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["lambda_h"] = self.lambda_h
        return config
