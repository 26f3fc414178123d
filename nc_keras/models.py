"""Networks of the paper, with a learned or a fixed Simplex-ETF classifier.

Every builder returns a `keras.Model` mapping images to logits, in which

- the layer named `"features"` outputs the penultimate features h (after
  global pooling, not normalized): the H of eq. (3);
- the layer named `"classifier"` holds W (its `kernel` is W^T, shape (d, K))
  and the bias b: a `keras.layers.Dense` (`classifier="learned"`) or an
  `nc_keras.layers.SimplexETF` (`classifier="etf"`).

The NC tools (`nc_keras.collapse`, `nc_keras.callbacks`) rely on these two
names.

The ResNets follow the torchvision layout, the one in which the paper counts
parameters (Sec. 4.3): convolutions without bias, each followed by
BatchNormalization (2 trainable parameters per channel), the stride of a
bottleneck on its 3x3 convolution, a 1x1 convolution + BN shortcut where the
shape changes, PyTorch's padding and initializers (He normal, fan-out, for
convolutions). `keras.applications.ResNet50` is a different layout (its
convolutions have biases) and does not reproduce the paper's counts.

`feature_dim=d` changes the last residual block so that it outputs d
channels: its last convolution and BN have d channels and its shortcut
becomes a 1x1 convolution + BN to d channels. With d = K this is the paper's
"d = K" variant (Sec. 4.3, Fig. 5).
"""

import functools
import math

import keras
from keras import layers

from nc_keras.layers import BatchNormalization, Conv2D, FeatureDecay, SimplexETF
from nc_keras.regularizers import HalfL2

CLASSIFIERS = ("learned", "etf")
STEMS = ("imagenet", "cifar")

# PyTorch's BatchNorm2d: momentum 0.1 on the new statistic, eps 1e-5.
_BN = dict(momentum=0.9, epsilon=1e-5)
# torchvision's ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu").
_CONV_INIT = dict(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _conv(filters, kernel_size, strides, name):
    """A bias-free convolution padded as PyTorch pads it (k // 2 each side)."""

    def apply(x):
        return Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=kernel_size // 2,
            use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(**_CONV_INIT),
            name=name,
        )(x)

    return apply


def _batch_norm(name):
    return BatchNormalization(name=name, **_BN)


def _basic_block(x, filters, strides, out_channels, name):
    """torchvision's BasicBlock: 3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut."""
    shortcut = x
    y = _conv(filters, 3, strides, f"{name}_conv1")(x)
    y = _batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(out_channels, 3, 1, f"{name}_conv2")(y)
    y = _batch_norm(f"{name}_bn2")(y)
    return _add_shortcut(shortcut, y, strides, out_channels, name)


def _bottleneck_block(x, filters, strides, out_channels, name):
    """torchvision's Bottleneck (v1.5): the stride sits on the 3x3 conv."""
    shortcut = x
    y = _conv(filters, 1, 1, f"{name}_conv1")(x)
    y = _batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, strides, f"{name}_conv2")(y)
    y = _batch_norm(f"{name}_bn2")(y)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = _conv(out_channels, 1, 1, f"{name}_conv3")(y)
    y = _batch_norm(f"{name}_bn3")(y)
    return _add_shortcut(shortcut, y, strides, out_channels, name)


def _add_shortcut(shortcut, residual, strides, out_channels, name):
    if strides != 1 or shortcut.shape[-1] != out_channels:
        shortcut = _conv(out_channels, 1, strides, f"{name}_downsample_conv")(shortcut)
        shortcut = _batch_norm(f"{name}_downsample_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([shortcut, residual])
    return layers.ReLU(name=f"{name}_out")(y)


_BLOCKS = {
    "basic": (_basic_block, 1),
    "bottleneck": (_bottleneck_block, 4),
}


def _check_common(num_classes, classifier, feature_dim):
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
    if classifier not in CLASSIFIERS:
        raise ValueError(
            f"classifier must be one of {CLASSIFIERS}; got {classifier!r}."
        )
    if feature_dim is not None:
        if int(feature_dim) != feature_dim or feature_dim < 1:
            raise ValueError(
                f"feature_dim must be None or a positive integer; got {feature_dim!r}."
            )
        if classifier == "etf" and feature_dim < num_classes - 1:
            raise ValueError(
                f"A fixed simplex-ETF classifier for {num_classes} classes needs "
                f"feature_dim >= num_classes - 1 = {num_classes - 1}; got "
                f"feature_dim={feature_dim}."
            )


def _input(input_shape, default):
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


def _resnet(
    block,
    blocks_per_stage,
    widths,
    name,
    num_classes,
    input_shape,
    classifier,
    feature_dim,
    use_bias,
    stem,
    **head_kwargs,
):
    _check_common(num_classes, classifier, feature_dim)
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}; got {stem!r}.")
    block_fn, expansion = _BLOCKS[block]
    inputs = _input(input_shape, (224, 224, 3) if stem == "imagenet" else (32, 32, 3))
    if stem == "imagenet":
        x = _conv(widths[0], 7, 2, "conv1")(inputs)
    else:
        x = _conv(widths[0], 3, 1, "conv1")(inputs)
    x = _batch_norm("bn1")(x)
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
            x = block_fn(x, width, strides, out_channels, f"layer{stage + 1}_{index}")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    logits = classification_head(x, num_classes, classifier, use_bias, **head_kwargs)
    return keras.Model(inputs, logits, name=name)


_RESNET_DOC = """{title} in the torchvision layout (He et al. 2016), returning logits.

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


def _resnet_builder(title, block, blocks_per_stage, own_dim):
    default_name = title.lower()

    def builder(
        num_classes=1000,
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
            block,
            blocks_per_stage,
            (64, 128, 256, 512),
            name,
            num_classes,
            input_shape,
            classifier,
            feature_dim,
            use_bias,
            stem,
            lambda_w=lambda_w,
            lambda_h=lambda_h,
            lambda_b=lambda_b,
            etf_rotation_seed=etf_rotation_seed,
        )

    builder.__name__ = builder.__qualname__ = default_name
    builder.__doc__ = _RESNET_DOC.format(title=title, own=own_dim)
    return builder


resnet18 = _resnet_builder("ResNet18", "basic", (2, 2, 2, 2), "d = 512")
resnet34 = _resnet_builder("ResNet34", "basic", (3, 4, 6, 3), "d = 512")
resnet50 = _resnet_builder("ResNet50", "bottleneck", (3, 4, 6, 3), "d = 2048")
resnet101 = _resnet_builder("ResNet101", "bottleneck", (3, 4, 23, 3), "d = 2048")
resnet152 = _resnet_builder("ResNet152", "bottleneck", (3, 8, 36, 3), "d = 2048")


def resnet18_adapt(
    width=64,
    num_classes=10,
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
    `feature_dim` is set. Other arguments as `resnet18`.
    """
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    width = int(width)
    return _resnet(
        "basic",
        (2, 2, 2, 2),
        (width, 2 * width, 4 * width, 8 * width),
        name or f"resnet18_adapt_w{width}",
        num_classes,
        input_shape,
        classifier,
        feature_dim,
        use_bias,
        "cifar",
        lambda_w=lambda_w,
        lambda_h=lambda_h,
        lambda_b=lambda_b,
        etf_rotation_seed=etf_rotation_seed,
    )


def mlp(
    width=1024,
    depth=4,
    num_classes=10,
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
    the last hidden layer has `feature_dim` units when it is set. Other
    arguments as `resnet18`.
    """
    _check_common(num_classes, classifier, feature_dim)
    if int(width) != width or width < 1 or int(depth) != depth or depth < 1:
        raise ValueError(
            f"width and depth must be positive integers; got width={width!r}, "
            f"depth={depth!r}."
        )
    inputs = _input(input_shape, (32, 32, 3))
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
        x = _batch_norm(f"bn{index + 1}")(x)
        x = layers.ReLU(name=f"relu{index + 1}")(x)
    logits = classification_head(
        x,
        num_classes,
        classifier,
        use_bias,
        lambda_w=lambda_w,
        lambda_h=lambda_h,
        lambda_b=lambda_b,
        etf_rotation_seed=etf_rotation_seed,
    )
    return keras.Model(inputs, logits, name=name or f"mlp_w{width}_d{depth}")


def densenet169(
    num_classes=1000,
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
    _check_common(num_classes, classifier, feature_dim)
    inputs = _input(input_shape, (224, 224, 3))
    backbone = keras.applications.DenseNet169(
        include_top=False, weights=None, input_tensor=inputs
    )
    x = backbone.output
    if feature_dim is not None:
        x = _conv(int(feature_dim), 1, 1, "feature_conv")(x)
        x = _batch_norm("feature_bn")(x)
        x = layers.ReLU(name="feature_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    logits = classification_head(
        x,
        num_classes,
        classifier,
        use_bias,
        lambda_w=lambda_w,
        lambda_h=lambda_h,
        lambda_b=lambda_b,
        etf_rotation_seed=etf_rotation_seed,
    )
    return keras.Model(inputs, logits, name=name)


def count_trainable_params(model):
    """Trainable parameters, as the paper counts them (Sec. 4.3).

    BatchNorm moving statistics and a fixed ETF kernel are not trainable
    weights, so they are not counted.
    """
    return int(sum(math.prod(weight.shape) for weight in model.trainable_weights))


# The comparisons of Sec. 4.3: (model, builder, dataset, K, variant, changed
# builder arguments, the paper's reduction in %).
PAPER_SAVINGS = (
    ("ResNet50", resnet50, "ImageNet", 1000, "fixed ETF classifier", (("classifier", "etf"),), 8.01),
    ("DenseNet169", densenet169, "ImageNet", 1000, "fixed ETF classifier", (("classifier", "etf"),), 11.76),
    ("ResNet18", resnet18, "CIFAR-10", 10, "d = K", (("feature_dim", 10),), 20.70),
    ("ResNet50", resnet50, "CIFAR-10", 10, "d = K", (("feature_dim", 10),), 4.45),
)


def parameter_savings(comparisons=PAPER_SAVINGS):
    """Trainable-parameter savings of a fixed classifier and of d = K (Sec. 4.3).

    Each comparison builds the model with the learned classifier and the
    architecture's own d, and the variant, in the torchvision layout with
    the ImageNet stem (the layout in which the paper's numbers hold), and
    counts trainable parameters with `count_trainable_params`. Counts do not
    depend on the spatial input size, so small inputs are used.

    Args:
        comparisons: rows as `PAPER_SAVINGS`.

    Returns:
        A list of dicts with keys `model`, `dataset`, `num_classes`,
        `variant`, `baseline_params`, `variant_params`, `reduction_percent`
        and `paper_percent`.
    """
    return [dict(row) for row in _parameter_savings(comparisons)]


# Building eight networks takes tens of seconds; the counts never change.
@functools.lru_cache(maxsize=4)
def _parameter_savings(comparisons):
    rows = []
    for title, builder, dataset, num_classes, variant, changes, paper in comparisons:
        common = dict(num_classes=num_classes, input_shape=(64, 64, 3))
        baseline = count_trainable_params(builder(**common))
        changed = count_trainable_params(builder(**common, **dict(changes)))
        keras.backend.clear_session()
        rows.append(
            {
                "model": title,
                "dataset": dataset,
                "num_classes": num_classes,
                "variant": variant,
                "baseline_params": baseline,
                "variant_params": changed,
                "reduction_percent": 100.0 * (baseline - changed) / baseline,
                "paper_percent": paper,
            }
        )
    return tuple(rows)
