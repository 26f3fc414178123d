"""The multi-layer perceptron of Sec. 4.2 (Fig. 4), with the paper's head."""

import math

import keras
from keras import layers

from nc_keras.deprecation import keyword_only
from nc_keras.models.head import check_arguments, classification_head
from nc_keras.models.pytorch_defaults import batch_norm


@keyword_only(("width", "depth", "num_classes", "input_shape", "classifier", "feature_dim",
               "use_bias", "lambda_w", "lambda_h", "lambda_b", "etf_rotation_seed", "name"))
def mlp(
    num_classes=10,
    *,
    width=1024,
    depth=4,
    input_shape=(32, 32, 3),
    classifier="learned",
    feature_dim=None,
    use_bias=True,
    lambda_w=0.0,
    lambda_h=0.0,
    lambda_b=0.0,
    etf_rotation_seed=None,
    name=None,
):
    """Multi-layer perceptron of Sec. 4.2 (Fig. 4): (Linear-BN-ReLU) x depth.

    The flattened input goes through `depth` hidden layers of `width` units,
    each Linear (with bias, PyTorch's initialization) -> BatchNorm -> ReLU;
    the last hidden layer has `feature_dim` units when it is set. The input
    is an image, `(height, width, channels)`, or a vector, `(n,)`. Other
    arguments as `resnet18`; all but `num_classes` are keyword-only (a call
    in the former order, `mlp(width, depth, num_classes, ...)`, still works
    with a DeprecationWarning when it passes more than one argument).
    """
    check_arguments(num_classes, classifier, feature_dim)
    if int(width) != width or width < 1 or int(depth) != depth or depth < 1:
        raise ValueError(
            f"width and depth must be positive integers; got width={width!r}, "
            f"depth={depth!r}."
        )
    inputs = _flat_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    for index in range(int(depth)):
        units = int(width)
        if index == depth - 1 and feature_dim is not None:
            units = int(feature_dim)
        fan_in = x.shape[-1]
        limit = 1.0 / math.sqrt(fan_in)
        x = layers.Dense(
            units,
            kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
            bias_initializer=keras.initializers.RandomUniform(-limit, limit),
            name=f"fc{index + 1}",
        )(x)
        x = batch_norm(f"bn{index + 1}")(x)
        x = layers.ReLU(name=f"relu{index + 1}")(x)
    logits = classification_head(
        x, num_classes, classifier, use_bias, lambda_w=lambda_w, lambda_h=lambda_h,
        lambda_b=lambda_b, etf_rotation_seed=etf_rotation_seed,
    )  # fmt: skip
    return keras.Model(inputs, logits, name=name or f"mlp_w{width}_d{depth}")


def _flat_input(input_shape):
    """The "images" input; any fully known shape, since the MLP flattens it."""
    shape = (32, 32, 3) if input_shape is None else tuple(input_shape)
    if not shape or any(s is None or int(s) != s or s < 1 for s in shape):
        raise ValueError(
            f"input_shape must be positive sizes, e.g. (height, width, channels) or "
            f"(features,); got {input_shape!r}."
        )
    return keras.Input(shape=shape, name="images")
