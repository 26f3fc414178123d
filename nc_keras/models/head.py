"""The paper's last layer, h -> W h + b, and what every builder checks.

Every model of `nc_keras.models` ends in `classification_head`: the layer
named "features" outputs the penultimate features h (the H of eq. (3)) and
the layer named "classifier" holds W and b.
"""

import math

import keras
from keras import layers

from nc_keras import validation
from nc_keras.layers import FeatureDecay, SimplexETF
from nc_keras.regularizers import HalfL2

CLASSIFIERS = ("learned", "etf")


def check_arguments(num_classes, classifier, feature_dim):
    """ValueErrors for the arguments every builder shares."""
    num_classes = validation.class_count(num_classes)
    if classifier not in CLASSIFIERS:
        raise ValueError(
            f"classifier must be one of {CLASSIFIERS}; got {classifier!r}."
        )
    if feature_dim is not None:
        feature_dim = validation.count(feature_dim, "feature_dim")
        if classifier == "etf" and feature_dim < num_classes - 1:
            raise ValueError(
                f"A fixed simplex-ETF classifier for {num_classes} classes needs "
                f"feature_dim >= num_classes - 1 = {num_classes - 1}; got "
                f"feature_dim={feature_dim}."
            )


def image_input(input_shape, default):
    """The model's `keras.Input` "images" of shape `input_shape` or `default`."""
    shape = tuple(default if input_shape is None else input_shape)
    if len(shape) != 3 or any(s is not None and s < 1 for s in shape):
        raise ValueError(
            f"input_shape must be (height, width, channels); got {input_shape!r}."
        )
    return keras.Input(shape=shape, name="images")


def classification_head(
    features,
    num_classes,
    classifier="learned",
    use_bias=True,
    lambda_w=0.0,
    lambda_h=0.0,
    lambda_b=0.0,
    etf_rotation_seed=None,
):
    """The paper's last layer on top of pooled features: h -> W h + b.

    Adds the identity layer `"features"` (a `FeatureDecay` carrying the
    feature penalty lambda_h) and the layer `"classifier"`. `lambda_w` and
    `lambda_b` put lambda/2 ||.||^2 (`HalfL2`) on W and b: together with
    `lambda_h` this is the appendix's objective, CE + lambda_W/2 ||W||^2 +
    lambda_b/2 ||b||^2 + lambda_H/2 ||H||^2, with no decay on the backbone.
    All three default to 0 (no explicit penalty: the paper's default decays
    all parameters through the optimizer instead, see
    `nc_keras.optimizers`). A fixed ETF kernel takes no penalty (it has no
    gradient).

    Returns the logits tensor.
    """
    num_classes = validation.class_count(num_classes)  # Dense takes an int only
    h = FeatureDecay(lambda_h, name="features")(features)
    bias_regularizer = HalfL2(lambda_b) if use_bias and lambda_b else None
    if classifier == "etf":
        head = SimplexETF(
            num_classes,
            use_bias=use_bias,
            rotation_seed=etf_rotation_seed,
            bias_regularizer=bias_regularizer,
            name="classifier",
        )
    else:
        # PyTorch's nn.Linear initialization: U(-1/sqrt(d), 1/sqrt(d)).
        limit = 1.0 / math.sqrt(h.shape[-1])
        head = layers.Dense(
            num_classes,
            use_bias=use_bias,
            kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
            bias_initializer=keras.initializers.RandomUniform(-limit, limit),
            kernel_regularizer=HalfL2(lambda_w) if lambda_w else None,
            bias_regularizer=bias_regularizer,
            name="classifier",
        )
    return head(h)
