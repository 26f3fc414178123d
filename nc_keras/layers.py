"""Layers for neural-collapse experiments.

- `SimplexETF`: a classifier fixed to a K-simplex equiangular tight frame
  (Zhu et al. 2021, Sec. 4.3 and footnote 15), with a trainable bias.
- `FeatureDecay`: an identity layer that puts the weight decay of the
  unconstrained feature model, lambda_H/2 ||H||_F^2 of eq. (3), on the
  penultimate features of a network (the paper's appendix experiment).
- `Conv2D`, `BatchNormalization`: drop-in subclasses of Keras's layers
  (same weights, config and results) with fused kernels on the torch
  backend, where Keras's own composition costs about a quarter of a ResNet
  training step on CPU (`benchmarks/bench_train.py`).
"""

import numpy as np

import keras
from keras import ops

from nc_keras import backend


def simplex_etf(num_classes, feature_dim, rotation_seed=None):
    """The K-simplex ETF classifier as a (d, K) NumPy kernel (float64).

    Following footnote 15 of the paper, the kernel is the transpose of the
    classifier W (K x d):

        W^T = sqrt(K / (K - 1)) P (I_K - 1 1^T / K),

    with P (d x K) having orthonormal columns. Its columns (the rows of W)
    have unit norm and W W^T = K/(K-1) (I_K - 1 1^T / K), i.e. eq. (5) with
    w* = 1.

    Args:
        num_classes: K >= 2.
        feature_dim: d >= K - 1.
        rotation_seed: `None` takes P = the first K columns of I_d, as the
            paper does. An integer draws a random orthonormal P from that
            seed (NumPy's `default_rng`), identical on every machine.

    When d = K - 1 no such P exists; the kernel is then sqrt(K/(K-1)) U,
    where the rows of U (K-1 x K) are an orthonormal basis of the
    complement of the all-ones vector (the Helmert basis, rotated by a
    random orthogonal matrix when `rotation_seed` is set). It has the same
    Gram matrix, so it is the same simplex ETF.
    """
    import operator

    try:  # operator.index: 2.7 (or 3.0) is refused, not truncated
        num_classes, feature_dim = operator.index(num_classes), operator.index(feature_dim)
    except TypeError:
        raise TypeError("num_classes and feature_dim must be integers; got "
                        f"{num_classes!r} and {feature_dim!r}") from None
    if num_classes < 2:
        raise ValueError(
            f"A simplex ETF needs at least 2 classes; got num_classes={num_classes}."
        )
    if feature_dim < num_classes - 1:
        raise ValueError(
            f"A {num_classes}-simplex ETF needs feature_dim >= num_classes - 1 = "
            f"{num_classes - 1} (K vectors with equal pairwise angles -1/(K-1) "
            f"span K-1 dimensions); got feature_dim={feature_dim}."
        )
    k = num_classes
    rng = None if rotation_seed is None else np.random.default_rng(rotation_seed)
    if feature_dim == k - 1:
        basis = _helmert_basis(k)
        if rng is not None:
            basis = _random_orthogonal(rng, k - 1, k - 1) @ basis
        return np.sqrt(k / (k - 1)) * basis
    if rng is None:
        projection = np.eye(feature_dim, k)
    else:
        projection = _random_orthogonal(rng, feature_dim, k)
    centring = np.eye(k) - np.ones((k, k)) / k
    return np.sqrt(k / (k - 1)) * projection @ centring


def _helmert_basis(k):
    """Rows: an orthonormal basis of {x in R^k : sum(x) = 0}."""
    basis = np.zeros((k - 1, k))
    for j in range(1, k):
        basis[j - 1, :j] = 1.0
        basis[j - 1, j] = -float(j)
        basis[j - 1] /= np.sqrt(j * (j + 1))
    return basis


def _random_orthogonal(rng, rows, cols):
    """A (rows x cols) matrix with orthonormal columns, Haar-distributed."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    # The sign fix makes the distribution uniform and the result unique.
    return q * np.sign(np.diag(r))


@keras.saving.register_keras_serializable(package="nc_keras")
class SimplexETF(keras.layers.Layer):
    """A Dense-like classifier fixed to a K-simplex ETF (Sec. 4.3).

    `output = inputs @ kernel + bias`, where `kernel` (shape (d, K), the
    transpose of the paper's W) is the simplex ETF of `simplex_etf()` and is
    never trained: it is a non-trainable weight, so optimizers, weight decay
    and regularizers never touch it. The bias is trainable (it collapses to
    b* 1 by Theorem 3.1; it is not fixed by the paper).

    Fixing the classifier saves its d x K parameters and, by Theorem 3.1,
    loses nothing at the global optimum: the learned classifier converges to
    a simplex ETF anyway, so the features align with the fixed one instead
    (NC3).

    Args:
        units: number of classes K >= 2.
        use_bias: whether to add a trainable bias. Defaults to `True`.
        rotation_seed: `None` (default) uses P = first K columns of I_d, as
            the paper does; an integer uses a seeded random orthonormal P.
        bias_initializer: initializer of the bias. Defaults to `"zeros"`.
        bias_regularizer: regularizer of the bias, e.g.
            `nc_keras.regularizers.HalfL2(lambda_b)`.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Input shape: `(..., d)` with d >= K - 1. Output shape: `(..., K)`.

    Example:

    >>> layer = SimplexETF(10, name="classifier")
    >>> logits = layer(keras.ops.ones((2, 512)))
    >>> W = keras.ops.convert_to_numpy(layer.kernel).T  # (10, 512)
    """

    def __init__(
        self,
        units,
        use_bias=True,
        rotation_seed=None,
        bias_initializer="zeros",
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) != units or units < 2:
            raise ValueError(
                f"SimplexETF needs units (the number of classes K) >= 2; got {units!r}."
            )
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.rotation_seed = rotation_seed
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        feature_dim = input_shape[-1]
        if feature_dim is None:
            raise ValueError(
                "SimplexETF needs a known feature dimension (last input axis); "
                f"got input shape {input_shape}."
            )
        etf = simplex_etf(self.units, feature_dim, self.rotation_seed)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(feature_dim, self.units),
            initializer=keras.initializers.Constant(etf),
            trainable=False,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                trainable=True,
            )
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: feature_dim})

    def call(self, inputs):
        outputs = ops.matmul(inputs, ops.cast(self.kernel, inputs.dtype))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "use_bias": self.use_bias,
                "rotation_seed": self.rotation_seed,
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
            }
        )
        return config


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

    The public reference code penalized L2-normalized features, which have
    constant norm and no gradient (SPEC section 5): this layer penalizes the
    raw features.

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


@keras.saving.register_keras_serializable(package="nc_keras")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with PyTorch's symmetric padding and no layout copies.

    Same arguments, weights (kernel shape `(kh, kw, in, out)`) and outputs
    as `keras.layers.Conv2D`, plus one more kind of `padding`: an integer p
    puts p zeros on each side of both spatial axes before a "valid"
    convolution, as PyTorch's `padding=p` does. (Keras's "same" pads only
    after the input at stride 2, so a torchvision ResNet needs p = k // 2
    there.)

    On the torch backend, an undilated, ungrouped channels-last convolution
    goes through `nc_keras.backend.fused_conv2d`, which hands torch a
    permuted view (and the padding) instead of a separate padding op and the
    two full layout copies Keras makes per call; everything else, and every
    other backend, is Keras's own `convolution_op` (after `keras.ops.pad`
    for an integer padding).
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", **kwargs):
        self.symmetric_padding = None
        if isinstance(padding, int) and not isinstance(padding, bool):
            if padding < 0:
                raise ValueError(f"An integer padding must be >= 0; got {padding}.")
            self.symmetric_padding, padding = padding, "valid"
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        if self.symmetric_padding and self.data_format != "channels_last":
            raise ValueError("An integer padding is supported for data_format='channels_last' only.")

    def convolution_op(self, inputs, kernel):
        if self.data_format == "channels_last" and self.groups == 1 and set(self.dilation_rate) == {1}:
            padding = self.symmetric_padding or self.padding
            outputs = backend.fused_conv2d(inputs, kernel, self.strides, padding)
            if outputs is not None:
                return outputs
        p = self.symmetric_padding
        if not p:
            return super().convolution_op(inputs, kernel)
        if set(self.strides) == {1} and all(size == 2 * p + 1 for size in self.kernel_size):
            padding = "same"  # the same zeros, without a padded copy
        else:
            inputs, padding = ops.pad(inputs, [(0, 0), (p, p), (p, p), (0, 0)]), "valid"
        return ops.conv(
            inputs, kernel, strides=list(self.strides), padding=padding,
            dilation_rate=self.dilation_rate, data_format=self.data_format,
        )  # fmt: skip

    def compute_output_shape(self, input_shape):
        if self.symmetric_padding:
            input_shape = list(input_shape)
            for axis in (1, 2):
                if input_shape[axis] is not None:
                    input_shape[axis] += 2 * self.symmetric_padding
        return super().compute_output_shape(tuple(input_shape))

    def get_config(self):
        config = super().get_config()
        if self.symmetric_padding:
            config["padding"] = self.symmetric_padding
        return config


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
