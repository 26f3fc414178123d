"""ResNets in the torchvision layout, with a learned or a fixed classifier.

The layout is the one in which the paper counts parameters (Zhu et al. 2021,
Sec. 4.3): convolutions without bias, each followed by BatchNormalization
(2 trainable parameters per channel), the stride of a bottleneck on its 3x3
convolution, a 1x1 convolution + BN shortcut where the shape changes,
PyTorch's padding and initializers (He normal, fan-out, for convolutions).
`keras.applications.ResNet50` is a different layout (its convolutions have
biases) and does not reproduce the paper's counts.

`feature_dim=d` changes the last residual block so that it outputs d
channels: its last convolution and BN have d channels and its shortcut
becomes a 1x1 convolution + BN to d channels. With d = K this is the paper's
"d = K" variant (Sec. 4.3, Fig. 5).
"""

import keras
from keras import layers

from nc_keras.deprecation import keyword_only
from nc_keras.models.head import check_arguments, classification_head, image_input
from nc_keras.models.pytorch_defaults import batch_norm, conv

STEMS = ("imagenet", "cifar")

# The architectures (He et al. 2016): name -> (title, residual block, blocks
# per stage). Every stage doubles the width of the previous one.
RESNETS = {
    "resnet18": ("ResNet18", "basic", (2, 2, 2, 2)),
    "resnet34": ("ResNet34", "basic", (3, 4, 6, 3)),
    "resnet50": ("ResNet50", "bottleneck", (3, 4, 6, 3)),
    "resnet101": ("ResNet101", "bottleneck", (3, 4, 23, 3)),
    "resnet152": ("ResNet152", "bottleneck", (3, 8, 36, 3)),
}
# The stage widths of the ImageNet ResNets (resnet18_adapt scales them).
WIDTHS = (64, 128, 256, 512)


def _residual_block(x, kernel_sizes, width, strides, out_channels, name):
    """torchvision's residual block: conv-BN-ReLU, ..., conv-BN, + shortcut.

    One convolution per entry of `kernel_sizes`, with `width` channels but
    the last, which has `out_channels`; the stride sits on the first 3x3
    convolution. The shortcut is a 1x1 convolution + BN where the shape
    changes.
    """
    y = x
    stride_at = kernel_sizes.index(3)
    for index, kernel_size in enumerate(kernel_sizes):
        last = index == len(kernel_sizes) - 1
        number = index + 1
        y = conv(
            out_channels if last else width, kernel_size, strides if index == stride_at else 1,
            f"{name}_conv{number}",
        )(y)  # fmt: skip
        y = batch_norm(f"{name}_bn{number}")(y)
        if not last:
            y = layers.ReLU(name=f"{name}_relu{number}")(y)
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = conv(out_channels, 1, strides, f"{name}_downsample_conv")(x)
        shortcut = batch_norm(f"{name}_downsample_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


# torchvision's residual blocks: the kernel sizes of their convolutions and
# their expansion (output channels / stage width). BasicBlock: 3x3, 3x3.
# Bottleneck (v1.5, the stride on its 3x3): 1x1, 3x3, 1x1.
_BLOCKS = {
    "basic": ((3, 3), 1),
    "bottleneck": ((1, 3, 1), 4),
}


def _resnet(block, blocks_per_stage, widths, stem, name, num_classes, input_shape, classifier,
            feature_dim, use_bias, **head_kwargs):  # fmt: skip
    """A ResNet of `block`s, `blocks_per_stage` of them in stages of `widths`."""
    check_arguments(num_classes, classifier, feature_dim)
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}; got {stem!r}.")
    kernel_sizes, expansion = _BLOCKS[block]
    inputs = image_input(input_shape, (224, 224, 3) if stem == "imagenet" else (32, 32, 3))
    if stem == "imagenet":
        x = conv(widths[0], 7, 2, "conv1")(inputs)
    else:
        x = conv(widths[0], 3, 1, "conv1")(inputs)
    x = batch_norm("bn1")(x)
    x = layers.ReLU(name="relu")(x)
    if stem == "imagenet":
        # Zero padding equals PyTorch's -inf padding here: inputs are >= 0.
        x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, (width, count) in enumerate(zip(widths, blocks_per_stage)):
        for index in range(count):
            last = stage == len(widths) - 1 and index == count - 1
            out_channels = width * expansion
            if last and feature_dim is not None:
                out_channels = int(feature_dim)
            strides = 2 if stage > 0 and index == 0 else 1
            x = _residual_block(x, kernel_sizes, width, strides, out_channels, f"layer{stage + 1}_{index}")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    logits = classification_head(x, num_classes, classifier, use_bias, **head_kwargs)
    return keras.Model(inputs, logits, name=name)


_RESNET_DOC = """{title} in the torchvision layout (He et al. 2016), returning logits.

    Every argument after `num_classes` is keyword-only (a call that passes
    more positionally, in the former order of the list below, still works
    with a DeprecationWarning).

    Args:
        num_classes: K, the number of classes. Defaults to 1000.
        input_shape: (height, width, channels). Defaults to (224, 224, 3)
            with the ImageNet stem and (32, 32, 3) with the CIFAR stem.
        classifier: `"learned"` (a trainable Dense layer) or `"etf"` (a
            fixed `SimplexETF`, Sec. 4.3).
        feature_dim: `None` for the architecture's own ({own}); an integer d
            makes the last residual block output d channels (its shortcut a
            1x1 conv + BN), as the paper's d = K.
        use_bias: whether the classifier has a bias b. Defaults to `True`.
        stem: `"imagenet"` (7x7 stride-2 conv + 3x3 stride-2 max-pool, the
            paper's Sec. 4.1 default) or `"cifar"` (3x3 stride-1 conv, no
            pool, Sec. 4.3).
        lambda_w, lambda_h, lambda_b: explicit penalties lambda/2 ||.||^2 on
            the classifier's W, the features H (per-sample mean over the
            batch, see `FeatureDecay`) and b. Default 0.
        etf_rotation_seed: with `classifier="etf"`, `None` takes the ETF's
            P = first K columns of I_d; an integer, a seeded random P.
        name: the model's name.

    Returns:
        A `keras.Model` with layers `"features"` and `"classifier"`.
    """


def _resnet_builder(default_name):
    title, block, blocks_per_stage = RESNETS[default_name]
    own_dim = f"d = {WIDTHS[-1] * _BLOCKS[block][1]}"

    @keyword_only(("num_classes", "input_shape", "classifier", "feature_dim", "use_bias", "stem",
                   "lambda_w", "lambda_h", "lambda_b", "etf_rotation_seed", "name"))
    def builder(
        num_classes=1000,
        *,
        input_shape=None,
        classifier="learned",
        feature_dim=None,
        use_bias=True,
        stem="imagenet",
        lambda_w=0.0,
        lambda_h=0.0,
        lambda_b=0.0,
        etf_rotation_seed=None,
        name=default_name,
    ):
        return _resnet(
            block, blocks_per_stage, WIDTHS, stem, name, num_classes, input_shape, classifier,
            feature_dim, use_bias, lambda_w=lambda_w, lambda_h=lambda_h, lambda_b=lambda_b,
            etf_rotation_seed=etf_rotation_seed,
        )  # fmt: skip

    builder.__name__ = builder.__qualname__ = default_name
    builder.__doc__ = _RESNET_DOC.format(title=title, own=own_dim)
    return builder


resnet18 = _resnet_builder("resnet18")
resnet34 = _resnet_builder("resnet34")
resnet50 = _resnet_builder("resnet50")
resnet101 = _resnet_builder("resnet101")
resnet152 = _resnet_builder("resnet152")


@keyword_only(("width", "num_classes", "input_shape", "classifier", "feature_dim", "use_bias",
               "lambda_w", "lambda_h", "lambda_b", "etf_rotation_seed", "name"))
def resnet18_adapt(
    num_classes=10,
    *,
    width=64,
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
    """ResNet18 of adjustable width (Sec. 4.2, Fig. 4): stage widths k, 2k, 4k, 8k.

    The stem is the CIFAR one (3x3 stride-1 conv with k channels, no pool);
    `width=64` is the CIFAR ResNet18. The penultimate dimension is 8k unless
    `feature_dim` is set. Other arguments as `resnet18`; all but
    `num_classes` are keyword-only (a call in the former order,
    `resnet18_adapt(width, num_classes, ...)`, still works with a
    DeprecationWarning when it passes more than one argument).
    """
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    width = int(width)
    return _resnet(
        "basic", RESNETS["resnet18"][2], (width, 2 * width, 4 * width, 8 * width), "cifar",
        name or f"resnet18_adapt_w{width}", num_classes, input_shape, classifier, feature_dim,
        use_bias, lambda_w=lambda_w, lambda_h=lambda_h, lambda_b=lambda_b,
        etf_rotation_seed=etf_rotation_seed,
    )  # fmt: skip
