"""nc_keras.data.profiles and load's imbalanced subsets: exact per-class counts."""

import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import profiles


def test_long_tailed_profile_is_that_of_the_long_tailed_cifar_benchmarks():
    # CIFAR-10-LT with imbalance ratio 100 (Cui et al. 2019; Cao et al. 2019).
    assert data.long_tailed_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert data.long_tailed_counts(100, 10, 1) == [100] * 10
    counts = data.long_tailed_counts(100, 10, 10)
    expected = [int(np.floor(100 * 10.0 ** (-k / 9))) for k in range(10)]
    assert counts == expected and counts[0] == 100 and counts[-1] == 10


def labels_of(dataset):
    return np.concatenate([np.asarray(y) for _, y in dataset])


def test_load_keeps_exactly_the_profile(shared_data):
    # The bundled MNIST subset (100 per class) and real MNIST.
    listed = [9, 8, 7, 6, 5, 4, 3, 2, 1, 1]
    labels = labels_of(data.load("mnist_subset", "train", samples_per_class=listed, shuffle=False))
    assert np.bincount(labels, minlength=10).tolist() == listed
    labels = labels_of(data.load("mnist_subset", "train", imbalance_ratio=10, seed=3))
    assert np.bincount(labels, minlength=10).tolist() == data.long_tailed_counts(100, 10, 10)
    labels = labels_of(data.load("mnist", "train", samples_per_class=200, imbalance_ratio=20,
                                 data_dir=shared_data, batch_size=512))
    assert np.bincount(labels, minlength=10).tolist() == data.long_tailed_counts(200, 10, 20)
    # Without samples_per_class, n_max is the smallest class (MNIST: 5421 fives).
    counts = data.class_counts(labels_of(data.load("mnist", "train", data_dir=shared_data,
                                                   batch_size=4096, shuffle=False)), 10,
                               imbalance_ratio=100)
    assert counts == data.long_tailed_counts(5421, 10, 100)


def test_imbalanced_subsets_keep_the_first_examples_of_each_class():
    full = labels_of(data.load("mnist_subset", "test", shuffle=False))
    images = [np.asarray(x) for x, _ in data.load("mnist_subset", "test", shuffle=False)]
    full_images = np.concatenate(images)
    subset = data.load("mnist_subset", "test", samples_per_class=list(range(1, 11)), shuffle=False)
    sub_images = np.concatenate([np.asarray(x) for x, _ in subset])
    sub_labels = labels_of(subset)
    for k in range(10):
        np.testing.assert_array_equal(sub_images[sub_labels == k], full_images[full == k][: k + 1])


def test_bad_profiles_are_refused():
    with pytest.raises(ValueError, match="3 counts for 10 classes"):
        data.load("mnist_subset", "train", samples_per_class=[5, 4, 3])
    with pytest.raises(ValueError, match="class 0 has 100 examples, fewer than samples_per_class=101"):
        data.load("mnist_subset", "train", samples_per_class=[101] + [1] * 9)
    with pytest.raises(ValueError, match="imbalance_ratio must be >= 1"):
        data.load("mnist_subset", "train", imbalance_ratio=0.5)
    with pytest.raises(ValueError, match="keeps no example"):
        data.load("mnist_subset", "train", samples_per_class=10, imbalance_ratio=20)
    with pytest.raises(ValueError, match="not a list"):
        profiles.check_class_profile([5] * 10, 10)
    with pytest.raises(ValueError, match="positive integer"):
        profiles.check_class_profile([5, 0], None)


def test_command_line_form():
    assert data.parse_samples_per_class("100") == 100
    assert data.parse_samples_per_class("500,250, 100") == [500, 250, 100]
    with pytest.raises(ValueError, match="comma-separated"):
        data.parse_samples_per_class("5,x")
