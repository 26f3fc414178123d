"""Tests of nc_keras.data.synthetic: random pixels and balanced random labels."""

import numpy as np

from nc_keras import data
from nc_keras.data import synthetic


def test_random_pixels_are_deterministic_uniform_and_balanced(arrays):
    options = dict(train_size=200, test_size=50, image_shape=(8, 8, 3), num_classes=5)
    first = arrays(data.load("random_pixels", "train", batch_size=64, shuffle=False, **options))
    again = arrays(data.load("random_pixels", "train", batch_size=32, shuffle=False, **options))
    other_seed = arrays(data.load("random_pixels", "train", shuffle=False, seed=1, **options))
    images, labels = first
    assert images.shape == (200, 8, 8, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() < 1.0
    assert abs(images.mean() - 0.5) < 0.01 and abs(images.var() - 1 / 12) < 0.005
    assert np.bincount(labels).tolist() == [40] * 5
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(labels, again[1])
    assert not np.allclose(images, other_seed[0])
    assert not np.array_equal(labels, other_seed[1])
    # Integer hashing: the same pixels as the numpy reference, on any machine.
    np.testing.assert_array_equal(images[7], data.random_pixels_reference(0, "train", 7, (8, 8, 3)))
    big_seed = data.random_pixels_reference(2**40 + 3, "train", 0, (2, 2, 1))
    assert big_seed.shape == (2, 2, 1)
    assert not np.allclose(big_seed, data.random_pixels_reference(3, "train", 0, (2, 2, 1)))
    test_images, test_labels = arrays(data.load("random_pixels", "test", **options))
    assert np.bincount(test_labels).tolist() == [10] * 5
    assert not np.allclose(test_images[:10], images[:10])


def test_random_pixels_default_is_cifar_sized():
    images, labels = next(iter(data.load("random_pixels", "test", batch_size=16)))
    assert images.shape == (16, 32, 32, 3) and labels.shape == (16,)
    assert data.info("random_pixels").split_sizes == {"train": 50_000, "test": 10_000}


def test_balanced_random_labels_are_seeded_per_split():
    labels = synthetic.balanced_random_labels(30, 3, seed=7, split="train")
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [10] * 3
    np.testing.assert_array_equal(labels, synthetic.balanced_random_labels(30, 3, 7, "train"))
    assert not np.array_equal(labels, synthetic.balanced_random_labels(30, 3, 7, "test"))
