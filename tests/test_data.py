"""Tests of nc_keras.data: the input pipelines of Sec. 4 of the paper.

Fast tests build tiny IDX files, image trees and CIFAR pickles in tmp_path;
the tfds path runs under `tfds.testing.mock_data`; real-data tests read
`../shared/data` (the `shared_data` fixture) and skip without it.
"""

import gzip
import pickle
import time

import keras
import numpy as np
import pytest

from nc_keras import data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tiny trees decode into a throw-away cache, not the user's ~/.cache.

    Real-data tests keep the real cache (see `real_cache`) so that CIFAR-10
    is unpacked and decoded once per machine, not once per test run.
    """
    monkeypatch.setenv("NC_KERAS_CACHE", str(tmp_path_factory.getbasetemp() / "nc_keras_cache"))


@pytest.fixture
def real_cache(monkeypatch):
    monkeypatch.delenv("NC_KERAS_CACHE", raising=False)


def arrays(dataset):
    """All (images, labels) of a dataset as numpy arrays."""
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def labels_of(dataset):
    return np.concatenate([y.numpy() for _, y in dataset])


# --------------------------------------------------------------------------
# Tiny local sources written by the tests


def write_idx(path, array, gzipped):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if gzipped:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_mnist_idx(folder, gzipped=True, per_class=(3, 2)):
    """Train/test IDX files; image i is filled with the value 10 * label."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", per_class[0]), ("t10k", per_class[1])):
        labels = np.tile(np.arange(10, dtype=np.uint8), n)
        images = np.repeat(labels * 10, 28 * 28).reshape(-1, 28, 28).astype(np.uint8)
        write_idx(folder / f"{stem}-images-idx3-ubyte", images, gzipped)
        write_idx(folder / f"{stem}-labels-idx1-ubyte", labels, gzipped)


def write_png_tree(root, classes, per_split=(4, 2), size=(8, 8), channels=3):
    """train/<class>/NN.png and test/<class>/NN.png with random pixels."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_split):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
                png = tf.io.encode_png(image).numpy()
                (root / split / name / f"{i:02d}.png").write_bytes(png)


# --------------------------------------------------------------------------
# info, names, arguments


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


def test_unknown_name_split_or_option_is_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist_subset", split="validation")
    with pytest.raises(ValueError, match="image_shape"):
        data.load("mnist_subset", image_shape=(8, 8, 3))


# --------------------------------------------------------------------------
# The shipped MNIST subset and MNIST preprocessing


def test_mnist_subset_is_offline_balanced_and_preprocessed():
    images, labels = arrays(data.load("mnist_subset", "test", batch_size=128))
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    assert np.bincount(labels).tolist() == [50] * 10
    # Grey copied to 3 identical channels, then normalized with MNIST's constants:
    # background 0 -> -0.1307/0.3081.
    assert np.array_equal(images[..., 0], images[..., 2])
    assert np.isclose(images.min(), -0.1307 / 0.3081, atol=1e-6)
    assert np.isclose(images.max(), (1 - 0.1307) / 0.3081, atol=1e-6)


def test_mnist_resize_matches_torchvision_resize_on_pil():
    # transforms.Resize(32) on a 28x28 PIL image is PIL's bilinear resize,
    # rounded to uint8; ours agrees to within one grey level.
    from PIL import Image

    images, _ = data._mnist_subset("test")
    ours = data._resize_mnist(images)[..., 0].astype(int)
    pil = np.stack(
        [np.asarray(Image.fromarray(im[..., 0]).resize((32, 32), Image.BILINEAR)) for im in images]
    ).astype(int)
    assert np.abs(ours - pil).max() <= 1
    assert (ours != pil).mean() < 0.1


# --------------------------------------------------------------------------
# random_pixels


def test_random_pixels_are_deterministic_uniform_and_balanced():
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
    assert big_seed.shape == (2, 2, 1) and not np.allclose(big_seed, data.random_pixels_reference(3, "train", 0, (2, 2, 1)))
    test_images, test_labels = arrays(data.load("random_pixels", "test", **options))
    assert np.bincount(test_labels).tolist() == [10] * 5
    assert not np.allclose(test_images[:10], images[:10])


def test_random_pixels_default_is_cifar_sized():
    images, labels = next(iter(data.load("random_pixels", "test", batch_size=16)))
    assert images.shape == (16, 32, 32, 3) and labels.shape == (16,)
    assert data.info("random_pixels").split_sizes == {"train": 50_000, "test": 10_000}


def test_shuffling_defaults_to_the_training_split_and_follows_the_seed():
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


def test_samples_per_class_takes_the_first_n_of_every_class():
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


# --------------------------------------------------------------------------
# Augmentation


def test_augment_crops_padded_images_and_flips_them():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    batch = rng.integers(1, 256, (16, 8, 8, 3), dtype=np.uint8)
    out = data._augment(tf.constant(batch), tf.constant([1, 2], tf.int64)).numpy()
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


def test_augment_applies_to_the_training_split_only():
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
# Local sources: IDX files, image trees, CIFAR pickles


@pytest.mark.parametrize("gzipped", [True, False])
def test_mnist_from_local_idx_files(tmp_path, gzipped):
    write_mnist_idx(tmp_path, gzipped=gzipped)
    images, labels = arrays(data.load("mnist", "train", data_dir=tmp_path, shuffle=False))
    assert images.shape == (30, 32, 32, 3)
    assert labels.tolist() == list(range(10)) * 3
    # Constant images stay constant through the resize: value 10*label.
    expected = (10 * labels / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(images[:, 5, 5, 1], expected, atol=1e-5)
    test_labels = labels_of(data.load("mnist", "test", data_dir=tmp_path))
    assert np.bincount(test_labels).tolist() == [2] * 10


def test_mnist_idx_in_torchvision_layout(tmp_path):
    write_mnist_idx(tmp_path / "MNIST" / "raw", gzipped=False)
    assert len(labels_of(data.load("mnist", "test", data_dir=tmp_path))) == 20


def test_corrupt_idx_file_is_reported(tmp_path):
    write_mnist_idx(tmp_path, gzipped=False)
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (20, 28, 28))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + b"\x00" * 100)
    with pytest.raises(ValueError, match=r"header says \(20, 28, 28\), payload has 100 bytes"):
        data.load("mnist", "test", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01" * 3)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + b"\x00" * (20 * 28 * 28))
    with pytest.raises(ValueError, match="20 images but 3 labels"):
        data.load("mnist", "test", data_dir=tmp_path)


def test_folder_tree_of_the_users_own_images(tmp_path):
    write_png_tree(tmp_path, ["cats", "apples", "boats"], per_split=(4, 2))
    description = data.info("folder", data_dir=tmp_path)
    assert description.class_names == ("apples", "boats", "cats")
    assert description.split_sizes == {"train": 12, "test": 6}
    assert description.input_shape == (8, 8, 3)
    images, labels = arrays(data.load("folder", "train", data_dir=tmp_path, shuffle=False))
    assert images.shape == (12, 8, 8, 3) and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # Default normalization: the training split's own per-channel statistics.
    np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(images.std(axis=(0, 1, 2)), 1, atol=1e-4)
    given = arrays(data.load("folder", "test", data_dir=tmp_path, mean=0.5, std=0.25))[0]
    raw = np.stack([
        np.asarray(keras.utils.load_img(p)) for c in ("apples", "boats", "cats")
        for p in sorted((tmp_path / "test" / c).iterdir())
    ])  # fmt: skip
    np.testing.assert_allclose(given, (raw / 255 - 0.5) / 0.25, atol=1e-5)


def test_folder_images_of_different_sizes_need_image_size(tmp_path):
    write_png_tree(tmp_path, ["a", "b"], per_split=(1, 1), size=(8, 8))
    write_png_tree(tmp_path / "other", ["a"], per_split=(1, 1), size=(6, 10))
    (tmp_path / "other" / "train" / "a" / "00.png").rename(tmp_path / "train" / "b" / "01.png")
    with pytest.raises(ValueError, match="image_size"):
        data.load("folder", data_dir=tmp_path)
    images = arrays(data.load("folder", data_dir=tmp_path, image_size=(5, 5), mean=0, std=1))[0]
    assert images.shape == (3, 5, 5, 3)


def test_cifar10_from_a_local_image_tree_and_its_random_labels(tmp_path):
    write_png_tree(tmp_path / "cifar10", data.CIFAR10_CLASSES, per_split=(2, 1), size=(32, 32))
    images, labels = arrays(data.load("cifar10", "train", data_dir=tmp_path, shuffle=False))
    assert images.shape == (20, 32, 32, 3) and labels.tolist() == sorted(list(range(10)) * 2)
    random_labels = labels_of(data.load("cifar10_random", "train", data_dir=tmp_path, shuffle=False))
    assert np.bincount(random_labels).tolist() == [2] * 10
    assert not np.array_equal(random_labels, labels)


def test_cifar10_from_a_tarball_read_without_unpacking(tmp_path):
    import tarfile

    write_png_tree(tmp_path / "tree" / "cifar10-jpg", data.CIFAR10_CLASSES, per_split=(2, 1), size=(32, 32))
    with tarfile.open(tmp_path / "cifar10-jpg.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "tree" / "cifar10-jpg", arcname="cifar10-jpg")  # with a top folder
    from_tar = arrays(data.load("cifar10", "train", data_dir=tmp_path, shuffle=False))
    from_tree = arrays(data.load("cifar10", "train", data_dir=tmp_path / "tree", shuffle=False))
    np.testing.assert_array_equal(from_tar[0], from_tree[0])
    np.testing.assert_array_equal(from_tar[1], from_tree[1])
    assert len(labels_of(data.load("cifar10", "test", data_dir=tmp_path))) == 10
    assert not (tmp_path / "cifar10-jpg").exists()
    assert len(list((data.cache_dir() / "decoded").glob("cifar10-jpg-*.npz"))) >= 1


def test_cifar10_from_torchvision_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows[name] = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
        batch = {b"data": rows[name], b"labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch))
    images, labels = arrays(data.load("cifar10", "test", data_dir=tmp_path))
    assert images.shape == (10, 32, 32, 3) and labels.tolist() == list(range(10))
    # Rows hold the red plane, then green, then blue.
    red_first_row = rows["test_batch"][3, :32]
    np.testing.assert_allclose(images[3, 0, :, 0], (red_first_row / 255 - 0.4914) / 0.2023, atol=1e-5)
    assert len(labels_of(data.load("cifar10", "train", data_dir=tmp_path))) == 50


# --------------------------------------------------------------------------
# tensorflow-datasets and the missing-data error


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_tfds_path_under_mock_data(monkeypatch, name):
    import tensorflow_datasets as tfds

    # Pretend to be online: under mock_data, download_and_prepare is a no-op
    # and as_dataset yields random examples with the real feature specs.
    monkeypatch.setattr(data, "_host_reachable", lambda host: True)
    with tfds.testing.mock_data(num_examples=20):
        images, labels = arrays(data.load(name, "train", batch_size=8))
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < 10


@pytest.mark.timeout(60)
def test_missing_data_raises_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_host_reachable", lambda host: False)
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load("mnist", data_dir=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert "dataset 'mnist' not found" in message
    assert f"MNIST IDX files in {tmp_path}" in message
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


def test_the_download_probe_fails_fast_offline():
    # tfds's own downloader retries for minutes without a network; the probe
    # in front of it must answer within its timeout.
    start = time.monotonic()
    assert not data._host_reachable("nc-keras-test.invalid", timeout=1.0)
    # A bare TCP connect is not enough: a proxy may accept any address.
    assert not data._host_reachable("10.255.255.1", timeout=1.0)
    assert not data._host_reachable("127.0.0.1", timeout=1.0)
    assert time.monotonic() - start < 5


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


# --------------------------------------------------------------------------
# Real data (../shared/data), skipped without it


def test_real_mnist(shared_data):
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
def test_real_cifar10_jpeg_copy(shared_data, real_cache):
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
def test_real_cifar10_random_labels(shared_data, real_cache):
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
