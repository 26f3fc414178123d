"""Tests of nc_keras.data.readers: IDX files, CIFAR pickles, the bundled MNIST subset."""

import pickle

import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import readers


def test_mnist_subset_is_offline_balanced_and_preprocessed(arrays):
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

    images, _ = readers.read_asset("mnist_subset.npz", "test")
    assert images.shape == (500, 28, 28, 1) and images.dtype == np.uint8
    ours = readers.resize_like_pil(images, (32, 32))[..., 0].astype(int)
    pil = np.stack(
        [np.asarray(Image.fromarray(im[..., 0]).resize((32, 32), Image.BILINEAR)) for im in images]
    ).astype(int)
    assert np.abs(ours - pil).max() <= 1
    assert (ours != pil).mean() < 0.1
    assert readers.resize_like_pil(images, (28, 28)) is images


@pytest.mark.parametrize("gzipped", [True, False])
def test_mnist_from_local_idx_files(tmp_path, gzipped, write_mnist_idx, tiny_sizes, arrays, labels_of):
    write_mnist_idx(tmp_path, gzipped=gzipped)
    tiny_sizes(30, 20, "mnist")
    images, labels = arrays(data.load("mnist", "train", data_dir=tmp_path, shuffle=False))
    assert images.shape == (30, 32, 32, 3)
    assert labels.tolist() == list(range(10)) * 3
    # Constant images stay constant through the resize: value 10*label.
    expected = (10 * labels / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(images[:, 5, 5, 1], expected, atol=1e-5)
    test_labels = labels_of(data.load("mnist", "test", data_dir=tmp_path))
    assert np.bincount(test_labels).tolist() == [2] * 10


def test_mnist_idx_in_torchvision_layout(tmp_path, write_mnist_idx, tiny_sizes, labels_of):
    write_mnist_idx(tmp_path / "MNIST" / "raw", gzipped=False)
    tiny_sizes(30, 20, "mnist")
    assert len(labels_of(data.load("mnist", "test", data_dir=tmp_path))) == 20


def test_corrupt_idx_file_is_reported(tmp_path, write_mnist_idx, tiny_sizes):
    write_mnist_idx(tmp_path, gzipped=False)
    tiny_sizes(30, 20, "mnist")
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (20, 28, 28))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + b"\x00" * 100)
    with pytest.raises(ValueError, match=r"header says \(20, 28, 28\), payload has 100 bytes"):
        data.load("mnist", "test", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01" * 3)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + b"\x00" * (20 * 28 * 28))
    with pytest.raises(ValueError, match="20 images but 3 labels"):
        data.load("mnist", "test", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x09\x01")
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        data.read_idx(tmp_path / "t10k-labels-idx1-ubyte")


def test_cifar10_from_torchvision_pickles(tmp_path, tiny_sizes, arrays, labels_of):
    tiny_sizes(50, 10, "cifar10")
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
