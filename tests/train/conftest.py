"""A small, fast training configuration for the tests of nc_keras.train."""

import pytest

from nc_keras.train import TrainConfig


@pytest.fixture
def small_config(tmp_path):
    """TrainConfig(**changes) of an MLP on 200 images of the shipped MNIST subset."""

    def make(**changes):
        settings = dict(
            dataset="mnist_subset", model="mlp", width=32, depth=2, epochs=3,
            batch_size=100, learning_rate=0.05, samples_per_class=20,
            test_samples_per_class=10, output_dir=str(tmp_path / "run"),
        )  # fmt: skip
        settings.update(changes)
        return TrainConfig(**settings)

    return make
