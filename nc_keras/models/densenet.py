"""DenseNet169 (Huang et al. 2017) with the paper's head."""

import keras
from keras import layers

from nc_keras.deprecation import keyword_only
from nc_keras.models.head import check_arguments, classification_head, image_input
from nc_keras.models.pytorch_defaults import batch_norm, conv


# The former positional order (arguments after num_classes are keyword-only).
_FORMER_ORDER = ("num_classes", "input_shape", "classifier", "feature_dim", "use_bias",
                 "lambda_w", "lambda_h", "lambda_b", "etf_rotation_seed", "name")


@keyword_only(_FORMER_ORDER)
def densenet169(
    num_classes=1000,
    *,
    input_shape=None,
    classifier="learned",
    feature_dim=None,
    use_bias=True,
    lambda_w=0.0,
    lambda_h=0.0,
    lambda_b=0.0,
    etf_rotation_seed=None,
    name="densenet169",
):
    """DenseNet169 (Huang et al. 2017) with the paper's head.

    The backbone is `keras.applications.DenseNet169` (no weights, no top):
    bias-free convolutions and BN, as torchvision's, so the trainable
    parameters match the paper's count (Sec. 4.3). Its d = 1664; with
    `feature_dim=d` a 1x1 conv + BN + ReLU to d channels is added before
    the pooling (DenseNet has no residual block to resize). Other arguments
    as `resnet18`; the default input is (224, 224, 3).
    """
    check_arguments(num_classes, classifier, feature_dim)
    inputs = image_input(input_shape, (224, 224, 3))
    backbone = keras.applications.DenseNet169(
        include_top=False, weights=None, input_tensor=inputs
    )
    x = backbone.output
    if feature_dim is not None:
        x = conv(int(feature_dim), 1, 1, "feature_conv")(x)
        x = batch_norm("feature_bn")(x)
        x = layers.ReLU(name="feature_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    logits = classification_head(
        x, num_classes, classifier, use_bias, lambda_w=lambda_w, lambda_h=lambda_h,
        lambda_b=lambda_b, etf_rotation_seed=etf_rotation_seed,
    )  # fmt: skip
    return keras.Model(inputs, logits, name=name)
