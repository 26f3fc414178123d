"""Fixtures of the nc_keras.data tests: a throw-away decode cache, writers
of tiny IDX files and image trees in tmp_path, and the split sizes that tiny
stand-ins for cifar10 and mnist must have.

Real-data tests read `../shared/data` (the `shared_data` fixture of
tests/conftest.py) and skip without it.
"""

import dataclasses
import gzip

import numpy as np
import pytest

from nc_keras import data


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


@pytest.fixture
def tiny_sizes(monkeypatch):
    """tiny_sizes(train, test, *names): catalogue entries `names` expect these split sizes.

    Local files of cifar10 and mnist must hold the real datasets' sizes (a
    cut file is refused); a tiny stand-in is checked against its own.
    """

    def expect(train, test, *names):
        for name in names:
            entry = dataclasses.replace(data.DATASETS[name], split_sizes={"train": train, "test": test})
            monkeypatch.setitem(data.DATASETS, name, entry)

    return expect


@pytest.fixture
def arrays():
    """All (images, labels) of a dataset as numpy arrays."""

    def collect(dataset):
        images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
        return np.concatenate(images), np.concatenate(labels)

    return collect


@pytest.fixture
def labels_of():
    """All labels of a dataset as one numpy array."""
    return lambda dataset: np.concatenate([y.numpy() for _, y in dataset])


def _write_idx(path, array, gzipped):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if gzipped:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


@pytest.fixture
def write_mnist_idx():
    """write(folder, gzipped=True, per_class=(3, 2)): train/test IDX files;
    image i is filled with the value 10 * label."""

    def write(folder, gzipped=True, per_class=(3, 2)):
        folder.mkdir(parents=True, exist_ok=True)
        for stem, n in (("train", per_class[0]), ("t10k", per_class[1])):
            labels = np.tile(np.arange(10, dtype=np.uint8), n)
            images = np.repeat(labels * 10, 28 * 28).reshape(-1, 28, 28).astype(np.uint8)
            _write_idx(folder / f"{stem}-images-idx3-ubyte", images, gzipped)
            _write_idx(folder / f"{stem}-labels-idx1-ubyte", labels, gzipped)

    return write


@pytest.fixture
def write_png_tree():
    """write(root, classes, per_split=(4, 2), size=(8, 8), channels=3):
    train/<class>/NN.png and test/<class>/NN.png with random pixels."""
    import tensorflow as tf

    def write(root, classes, per_split=(4, 2), size=(8, 8), channels=3):
        rng = np.random.default_rng(0)
        for split, n in zip(("train", "test"), per_split):
            for name in classes:
                (root / split / name).mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    image = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
                    png = tf.io.encode_png(image).numpy()
                    (root / split / name / f"{i:02d}.png").write_bytes(png)

    return write
