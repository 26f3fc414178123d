"""Tests of nc_keras.data.sources: the search order of public datasets,
tensorflow-datasets (under `tfds.testing.mock_data`), the missing-data error,
and the real data in ../shared/data (skipped without it)."""

import time

import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import download

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_tfds_path_under_mock_data(monkeypatch, name, arrays):
    import tensorflow_datasets as tfds

    # Pretend to be online: under mock_data, download_and_prepare is a no-op
    # and as_dataset yields random examples with the real feature specs.
    monkeypatch.setattr(download, "host_reachable", lambda host: True)
    with tfds.testing.mock_data(num_examples=20):
        images, labels = arrays(data.load(name, "train", batch_size=8))
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < 10


@pytest.mark.timeout(60)
def test_missing_data_raises_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "host_reachable", lambda host: False)
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load("mnist", data_dir=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert "dataset 'mnist' not found" in message
    assert f"MNIST IDX files in {tmp_path}" in message
    assert f"class-folder tree {tmp_path / 'mnist'}/train" in message
    assert "tensorflow-datasets prepared data" in message
    assert "storage.googleapis.com unreachable" in message
    assert "going online" in message and "pointing data_dir at local files" in message
    assert "train-images-idx3-ubyte" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    with pytest.raises(data.DataNotFoundError, match="cifar10-jpg.tar.gz") as caught:
        data.load("cifar10_random", download=False)
    assert "data_dir was not given" in str(caught.value)
    assert "download=False" in str(caught.value)
    with pytest.raises(data.DataNotFoundError, match="train/<class>"):
        data.load("folder", data_dir=tmp_path)
    with pytest.raises(ValueError, match="needs data_dir"):
        data.info("folder")


def test_the_download_probe_fails_fast_offline():
    # tfds's own downloader retries for minutes without a network; the probe
    # in front of it must answer within its timeout.
    start = time.monotonic()
    assert not download.host_reachable("nc-keras-test.invalid", timeout=1.0)
    # A bare TCP connect is not enough: a proxy may accept any address.
    assert not download.host_reachable("10.255.255.1", timeout=1.0)
    assert not download.host_reachable("127.0.0.1", timeout=1.0)
    assert time.monotonic() - start < 5


# --------------------------------------------------------------------------
# Real data (../shared/data), skipped without it


def test_real_mnist(shared_data, arrays, labels_of):
    train_labels = labels_of(data.load("mnist", "train", data_dir=shared_data, batch_size=6000))
    assert np.bincount(train_labels).tolist() == MNIST_TRAIN_COUNTS
    images, labels = arrays(data.load("mnist", "test", data_dir=shared_data, batch_size=5000))
    assert images.shape == (10_000, 32, 32, 3) and len(labels) == 10_000
    # The constants are the 28x28 training statistics; bilinear upsampling
    # keeps the mean and smooths the std a little: mean within 0.02 of 0,
    # std within 0.08 of 1.
    assert abs(images.mean()) < 0.02, images.mean()
    assert abs(images.std() - 1) < 0.08, images.std()


@pytest.mark.timeout(600)  # the first run unpacks and decodes 60,000 JPEGs
def test_real_cifar10_jpeg_copy(shared_data, real_cache, arrays, labels_of):
    images, labels = arrays(data.load("cifar10", "test", data_dir=shared_data, batch_size=5000))
    assert images.shape == (10_000, 32, 32, 3)
    assert np.bincount(labels).tolist() == [1000] * 10
    train_labels = labels_of(data.load("cifar10", "train", data_dir=shared_data, batch_size=10_000))
    assert np.bincount(train_labels).tolist() == [5000] * 10
    # Mean: the JPEG copy matches the published means to 3 decimals, so the
    # normalized mean is within 0.03 of 0. Std: the paper's "std" constants
    # (0.2023, ...) are smaller than CIFAR-10's pixel std (0.247, 0.243,
    # 0.261), so the normalized std is about 1.2-1.3, not 1; check [1.1, 1.4].
    per_channel_mean = images.mean(axis=(0, 1, 2))
    per_channel_std = images.std(axis=(0, 1, 2))
    assert np.all(np.abs(per_channel_mean) < 0.03), per_channel_mean
    assert np.all((per_channel_std > 1.1) & (per_channel_std < 1.4)), per_channel_std


@pytest.mark.timeout(600)
def test_real_cifar10_random_labels(shared_data, real_cache, labels_of):
    def random_labels(split, seed=0):
        return labels_of(
            data.load("cifar10_random", split, data_dir=shared_data, batch_size=10_000, shuffle=False, seed=seed)
        )

    true_test = labels_of(data.load("cifar10", "test", data_dir=shared_data, batch_size=10_000))
    test = random_labels("test")
    assert np.bincount(test).tolist() == [1000] * 10
    assert np.array_equal(test, random_labels("test"))
    assert 0.87 < np.mean(test != true_test) < 0.93  # chance agreement is 1/10
    assert not np.array_equal(test, random_labels("test", seed=1))
    train = random_labels("train")
    assert np.bincount(train).tolist() == [5000] * 10
