"""The K-simplex equiangular tight frame and a classifier fixed to it.

Zhu et al. 2021, eq. (5), Sec. 4.3 and footnote 15: `simplex_etf` builds the
frame, `SimplexETF` is a Dense-like layer whose kernel is fixed to it, with
a trainable bias.
"""

import keras
import numpy as np
from keras import ops

from nc_keras import validation


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
    num_classes = validation.class_count(num_classes)
    feature_dim = validation.count(feature_dim, "feature_dim")
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
        self.units = validation.class_count(units, "units (the number of classes K)")
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
