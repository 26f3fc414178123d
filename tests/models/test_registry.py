"""The one table of networks: names, titles, options, and no describe <-> train cycle."""

import subprocess
import sys

import pytest

from nc_keras import models
from nc_keras.models import registry


def test_every_name_is_a_builder_with_a_title():
    assert registry.MODEL_NAMES == (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnet18_adapt", "mlp", "densenet169",
    )  # fmt: skip
    for name, model in registry.MODELS.items():
        assert model.builder is getattr(models, name)
        assert model.title.startswith(("ResNet", "MLP", "DenseNet"))
    with pytest.raises(ValueError, match=r"model must be one of \('resnet18'.*got 'vgg'"):
        registry.spec("vgg")


def test_architecture_says_what_is_built():
    assert registry.architecture("resnet18", "cifar", 8, 3) == dict(stem="cifar", width=None, depth=None)
    assert registry.architecture("resnet18_adapt", "imagenet", None) == dict(
        stem="cifar", width=64, depth=None)
    assert registry.architecture("mlp", "cifar", 32) == dict(stem=None, width=32, depth=4)
    assert registry.architecture("densenet169", "cifar", 8, 2) == dict(stem=None, width=None, depth=None)


def test_build_passes_only_the_options_a_network_takes():
    mlp = registry.build("mlp", 3, stem="cifar", width=6, depth=2, input_shape=(4,))
    assert [layer.name for layer in mlp.layers if layer.name.startswith("fc")] == ["fc1", "fc2"]
    assert mlp.get_layer("fc1").units == 6
    assert mlp.get_layer("classifier").units == 3
    adapt = registry.build("resnet18_adapt", 4, stem="imagenet", width=2, depth=7,
                           input_shape=(8, 8, 3))
    assert adapt.get_layer("features").output.shape[-1] == 16  # 8k, k = 2


def test_describe_does_not_import_the_trainer():
    # The titles come from the registry: describing runs loads no training code.
    code = ("import sys, nc_keras.describe; "
            "print(any(name.startswith('nc_keras.train') for name in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    assert out == "False"
