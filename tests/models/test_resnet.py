import numpy as np
import pytest

import keras

from nc_keras import models
from nc_keras.layers import FeatureDecay, SimplexETF


def _conv_params(cin, cout, k):
    return cin * cout * k * k


def _bn(c):
    return 2 * c


def _torchvision_resnet18_params(num_classes, stem, d=None, widths=(64, 128, 256, 512)):
    """ResNet18 trainable parameters counted by hand, as torchvision's layout."""
    w0 = widths[0]
    total = _conv_params(3, w0, 7 if stem == "imagenet" else 3) + _bn(w0)
    cin = w0
    for stage, width in enumerate(widths):
        for index in range(2):
            out = width
            last = stage == 3 and index == 1
            if last and d is not None:
                out = d
            total += _conv_params(cin, width, 3) + _bn(width)
            total += _conv_params(width, out, 3) + _bn(out)
            if cin != out or (stage > 0 and index == 0):
                total += _conv_params(cin, out, 1) + _bn(out)
            cin = out
    return total + cin * num_classes + num_classes


@pytest.mark.parametrize(
    "stem, feature_dim, classifier",
    [("cifar", None, "learned"), ("cifar", 10, "etf"), ("imagenet", None, "learned")],
)
def test_resnet18_layout_names_shapes_and_counts(stem, feature_dim, classifier):
    shape = (32, 32, 3)
    model = models.resnet18(
        num_classes=10, input_shape=shape, stem=stem, feature_dim=feature_dim,
        classifier=classifier,
    )
    d = feature_dim or 512
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype("float32")
    assert tuple(model.predict(x, verbose=0).shape) == (2, 10)
    features = model.get_layer("features")
    head = model.get_layer("classifier")
    assert isinstance(features, FeatureDecay)
    assert features.output.shape[-1] == d
    assert tuple(head.kernel.shape) == (d, 10)
    assert isinstance(head, SimplexETF if classifier == "etf" else keras.layers.Dense)
    expected = _torchvision_resnet18_params(10, stem, feature_dim)
    if classifier == "etf":
        expected -= d * 10
    assert models.count_trainable_params(model) == expected
    # No convolution has a bias, and none of BN's moving statistics count.
    assert all(not layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))


def test_resnet18_matches_torchvision_total():
    # torchvision.models.resnet18(num_classes=1000): 11,689,512 parameters.
    assert models.count_trainable_params(models.resnet18(input_shape=(64, 64, 3))) == 11_689_512


def test_resnet50_bottleneck_counts_and_stride():
    # torchvision.models.resnet50(): 25,557,032 parameters.
    model = models.resnet50(input_shape=(64, 64, 3))
    assert models.count_trainable_params(model) == 25_557_032
    # The stride of the first bottleneck of stage 2 is on its 3x3 conv.
    assert model.get_layer("layer2_0_conv1").strides == (1, 1)
    assert model.get_layer("layer2_0_conv2").strides == (2, 2)
    assert model.get_layer("features").output.shape[-1] == 2048


@pytest.mark.parametrize("width", [4, 16])
def test_resnet18_adapt_widths(width):
    model = models.resnet18_adapt(width=width, num_classes=10)
    widths = (width, 2 * width, 4 * width, 8 * width)
    assert models.count_trainable_params(model) == _torchvision_resnet18_params(
        10, "cifar", None, widths
    )
    assert model.get_layer("features").output.shape[-1] == 8 * width


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=1), "num_classes must be an integer >= 2"),
        (dict(classifier="fixed"), "classifier must be one of"),
        (dict(feature_dim=0), "feature_dim must be an integer >= 1; got 0"),
        (dict(classifier="etf", feature_dim=5), "feature_dim >= num_classes - 1 = 9"),
        (dict(stem="tiny"), "stem must be one of"),
        (dict(input_shape=(32, 32)), r"input_shape must be \(height, width, channels\)"),
    ],
)
def test_builders_reject_bad_arguments(kwargs, message):
    kwargs = dict(dict(num_classes=10, input_shape=(32, 32, 3)), **kwargs)
    with pytest.raises(ValueError, match=message):
        models.resnet18(**kwargs)
