"""Tests of nc_keras.data.pipeline: shuffling, subsets, augmentation, model.fit."""

import keras
import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import pipeline


def test_shuffling_defaults_to_the_training_split_and_follows_the_seed(labels_of):
    options = dict(train_size=100, test_size=100, image_shape=(2, 2, 1))
    ordered = labels_of(data.load("random_pixels", "test", **options))
    train_a = labels_of(data.load("random_pixels", "train", seed=3, **options))
    train_b = labels_of(data.load("random_pixels", "train", seed=3, **options))
    train_plain = labels_of(data.load("random_pixels", "train", seed=3, shuffle=False, **options))
    assert np.array_equal(train_a, train_b)
    assert not np.array_equal(train_a, train_plain)
    assert sorted(train_a) == sorted(train_plain)
    test_shuffled = labels_of(data.load("random_pixels", "test", shuffle=True, **options))
    assert not np.array_equal(ordered, test_shuffled)
    # A new order every epoch.
    dataset = data.load("random_pixels", "train", seed=3, **options)
    assert not np.array_equal(labels_of(dataset), labels_of(dataset))
    sizes = [len(y) for _, y in data.load("random_pixels", batch_size=32, drop_remainder=True, **options)]
    assert sizes == [32, 32, 32]


# --------------------------------------------------------------------------
# samples_per_class


def test_samples_per_class_takes_the_first_n_of_every_class(arrays, labels_of):
    full_images, full_labels = arrays(data.load("mnist_subset", "test"))
    images, labels = arrays(data.load("mnist_subset", "test", samples_per_class=7))
    assert np.bincount(labels).tolist() == [7] * 10
    for k in range(10):
        np.testing.assert_array_equal(images[labels == k], full_images[full_labels == k][:7])
    shuffled = labels_of(data.load("mnist_subset", "train", samples_per_class=3, seed=5))
    assert np.bincount(shuffled).tolist() == [3] * 10


def test_samples_per_class_beyond_a_class_size_is_an_error():
    with pytest.raises(ValueError, match="class 0 has 100 examples, fewer than samples_per_class=101"):
        data.load("mnist_subset", "train", samples_per_class=101)
    with pytest.raises(ValueError, match="positive integer"):
        data.load("mnist_subset", "train", samples_per_class=0)


def test_first_per_class_keeps_the_stored_order():
    labels = np.array([2, 0, 1, 0, 2, 1, 0])
    assert pipeline.first_per_class(labels, 2, 3).tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="toy: class 1 has 2 examples"):
        pipeline.first_per_class(labels, 3, 3, "toy")


# --------------------------------------------------------------------------
# Augmentation


def test_crop_and_flip_crops_padded_images_and_flips_them():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    batch = rng.integers(1, 256, (16, 8, 8, 3), dtype=np.uint8)
    out = data.crop_and_flip(tf.constant(batch), tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == batch.shape and out.dtype == np.uint8
    padded = np.pad(batch, [(0, 0), (4, 4), (4, 4), (0, 0)])  # zero (black) padding
    flips = 0
    for i in range(len(batch)):
        candidates = [
            (flip, padded[i, r : r + 8, c : c + 8][:, ::-1] if flip else padded[i, r : r + 8, c : c + 8])
            for r in range(9)
            for c in range(9)
            for flip in (False, True)
        ]
        matches = [flip for flip, crop in candidates if np.array_equal(crop, out[i])]
        assert matches, f"image {i} is no flipped crop of its padded original"
        flips += matches[0]
    assert 0 < flips < len(batch)  # both flipped and unflipped images occur


def test_augment_applies_to_the_training_split_only(arrays):
    plain_test = arrays(data.load("mnist_subset", "test", batch_size=100))
    augmented_test = arrays(data.load("mnist_subset", "test", batch_size=100, augment=True))
    np.testing.assert_array_equal(plain_test[0], augmented_test[0])
    plain = arrays(data.load("mnist_subset", "train", shuffle=False))
    augmented = arrays(data.load("mnist_subset", "train", shuffle=False, augment=True))
    assert augmented[0].shape == plain[0].shape
    np.testing.assert_array_equal(augmented[1], plain[1])
    assert not np.array_equal(augmented[0], plain[0])
    # Cropping/flipping neither invents nor rescales values: padding is black.
    assert augmented[0].min() >= plain[0].min() and augmented[0].max() <= plain[0].max()


# --------------------------------------------------------------------------
# model.fit on every backend


def test_model_fit_accepts_the_pipelines(backend):
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, strides=4),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])  # fmt: skip
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    train = data.load("mnist_subset", "train", batch_size=100, augment=True)
    test = data.load("mnist_subset", "test", batch_size=100)
    history = model.fit(train, validation_data=test, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
    pixels = data.load("random_pixels", train_size=60, test_size=10, batch_size=20)
    assert np.isfinite(model.fit(pixels, epochs=1, verbose=0, shuffle=False).history["loss"][0])
