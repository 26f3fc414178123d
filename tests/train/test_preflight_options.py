"""max_steps, the balanced NC subset of nc_max_samples, and what config.json records."""

import json
import math
import warnings

import numpy as np
import pytest

import keras

from nc_keras import data
from nc_keras.callbacks import load_history, read_csv_log
from nc_keras.train import TrainConfig, train
from nc_keras.train.run import measured_per_class


class _BatchCounter(keras.callbacks.Callback):
    """Counts the training batches of every epoch."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1] += 1


# 200 training samples in batches of 50: 4 batches an epoch uncapped.
@pytest.mark.parametrize(
    "optimizer, max_steps, batches",
    [("sgd", 2, 2), ("sgd", 9, 4), ("sgd", None, 4), ("lbfgs", 1, 1)],
)
def test_max_steps_caps_the_batches_of_every_epoch(small_config, optimizer, max_steps, batches):
    config = small_config(optimizer=optimizer, batch_size=50, epochs=2, max_steps=max_steps)
    counter = _BatchCounter()
    with warnings.catch_warnings():
        # The data is not repeated, and never runs out under the cap.
        warnings.filterwarnings("error", message=".*ran out of data.*")
        train(config, callbacks=[counter], verbose=0)
    assert counter.per_epoch == [batches, batches]
    log = read_csv_log(f"{config.output_dir}/log.csv")
    assert log["epoch"] == [0, 1]
    assert json.loads(open(f"{config.output_dir}/config.json").read())["max_steps"] == max_steps


def test_max_steps_must_be_positive(small_config):
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        small_config(max_steps=0).resolved()


def test_nc_max_samples_measures_a_balanced_subset():
    cifar = data.info("cifar10")
    # The first 64 of the class-sorted CIFAR-10 tarball would be one class.
    assert measured_per_class(None, 64, None, cifar, "train") == 6
    assert measured_per_class(4, 64, None, cifar, "train") == 4
    assert measured_per_class(100, 64, None, cifar, "test") == 6
    assert measured_per_class(None, 5, None, cifar, "train") == 1  # at least one per class
    assert measured_per_class(None, 10_000, None, cifar, "test") is None  # all of it
    assert measured_per_class(7, None, None, cifar, "train") == 7
    # An imbalanced subset: each class capped; a long-tailed profile kept.
    assert measured_per_class([500, 4], 64, None, cifar, "train") == [6, 4]
    assert measured_per_class(500, 64, 10.0, cifar, "train") == 500


def test_nc_is_measured_on_every_class_of_the_subset(small_config):
    config = small_config(epochs=1, nc_max_samples=30)
    log = train(config, verbose=0)
    history = load_history(f"{config.output_dir}/nc_history")
    np.testing.assert_array_equal(history["train_counts"][0], np.full(10, 3))
    np.testing.assert_array_equal(history["val_counts"][0], np.full(10, 3))
    assert all(math.isfinite(log[key][0]) for key in ("nc1", "nc2", "nc3", "nc4", "val_nc1"))


@pytest.mark.parametrize(
    "changes, stem, width, depth, feature_dim",
    [
        # resnet18_adapt always has the CIFAR stem, whatever `stem` says.
        (dict(model="resnet18_adapt", width=2, stem="imagenet"), "cifar", 2, None, 16),
        (dict(model="resnet18_adapt", width=2, feature_dim=10), "cifar", 2, None, 10),
        # An MLP has no stem; its unset depth is the builder's default (4).
        (dict(model="mlp", width=8, depth=None), None, 8, 4, 8),
    ],
)
def test_config_json_records_what_was_built(small_config, changes, stem, width, depth, feature_dim):
    config = small_config(epochs=1, samples_per_class=2, test_samples_per_class=1, **changes)
    train(config, verbose=0)
    written = json.loads(open(f"{config.output_dir}/config.json").read())
    assert (written["stem"], written["width"], written["depth"]) == (stem, width, depth)
    assert written["built"]["feature_dim"] == feature_dim
    assert written["built"]["trainable_params"] > 0


def test_resolved_keeps_the_stem_of_a_torchvision_resnet():
    assert TrainConfig(model="resnet50", stem="cifar").resolved().stem == "cifar"
    assert TrainConfig(model="resnet18").resolved().stem == "imagenet"
    assert TrainConfig(model="resnet18_adapt").resolved().width == 64
