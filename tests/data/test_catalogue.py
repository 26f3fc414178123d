"""Tests of nc_keras.data.catalogue: the entries, info, option checks, describe."""

import pytest

from nc_keras import data
from nc_keras.data import catalogue


def test_info_describes_every_dataset():
    cifar = data.info("cifar10")
    assert (cifar.num_classes, cifar.input_shape) == (10, (32, 32, 3))
    assert cifar.split_sizes == {"train": 50_000, "test": 10_000}
    assert cifar.mean == (0.4914, 0.4822, 0.4465) and cifar.std == (0.2023, 0.1994, 0.2010)
    mnist = data.info("mnist")
    assert mnist.input_shape == (32, 32, 3) and mnist.split_sizes == {"train": 60_000, "test": 10_000}
    assert mnist.mean == (0.1307,) * 3 and mnist.std == (0.3081,) * 3
    assert data.info("cifar10_random").split_sizes == cifar.split_sizes
    assert data.info("mnist_subset").split_sizes == {"train": 1000, "test": 500}
    pixels = data.info("random_pixels", image_shape=(8, 8, 1), num_classes=4)
    assert (pixels.input_shape, pixels.num_classes, pixels.mean) == ((8, 8, 1), 4, None)


def test_info_returns_fresh_split_sizes():
    data.info("cifar10").split_sizes["train"] = 1
    assert data.info("cifar10").split_sizes["train"] == 50_000


def test_unknown_name_split_or_option_is_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("cifar1000")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist_subset", split="validation")
    with pytest.raises(ValueError, match="image_shape"):
        data.load("mnist_subset", image_shape=(8, 8, 3))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['size'\] for 'folder'; it takes"):
        data.info("folder", size=3)


def test_names_options_and_help_come_from_the_entries():
    assert data.NAMES == (
        "cifar10", "mnist", "cifar10_random", "cifar100", "fashion_mnist", "svhn", "stl10", "imagenet",
        "random_pixels", "mnist_subset", "folder",
    )  # fmt: skip
    assert data.NAMES == tuple(data.DATASETS) == catalogue.NAMES
    assert data.DATASETS["folder"].options == {
        "image_size": None, "channels": 3, "mean": None, "std": None, "random_labels": False,
    }  # fmt: skip
    assert data.DATASETS["cifar10"].options == {"random_labels": False}
    assert data.DATASETS["cifar10_random"].options == {"random_labels": True}
    assert data.DATASETS["cifar100"].options == {"label": "fine", "random_labels": False}
    text = data.describe()
    assert len(text.splitlines()) == len(data.NAMES) + 1  # and tfds:<name>
    assert "- tfds:<name>: " in data.load.__doc__
    for name, entry in data.DATASETS.items():
        assert f"- {name}: {entry.help}" in text  # one line each
        assert f"- {name}: " in data.load.__doc__
    assert "train_size=50000" in text and "std 0.3081" in text
    assert "{datasets}" not in data.load.__doc__
