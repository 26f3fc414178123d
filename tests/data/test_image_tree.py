"""Tests of nc_keras.data.image_tree: class-folder trees, tarballs, the decode cache."""

import keras
import numpy as np
import pytest

from nc_keras import data


def test_folder_tree_of_the_users_own_images(tmp_path, write_png_tree, arrays):
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


def test_folder_images_of_different_sizes_need_image_size(tmp_path, write_png_tree, arrays):
    write_png_tree(tmp_path, ["a", "b"], per_split=(1, 1), size=(8, 8))
    write_png_tree(tmp_path / "other", ["a"], per_split=(1, 1), size=(6, 10))
    (tmp_path / "other" / "train" / "a" / "00.png").rename(tmp_path / "train" / "b" / "01.png")
    with pytest.raises(ValueError, match="image_size"):
        data.load("folder", data_dir=tmp_path)
    images = arrays(data.load("folder", data_dir=tmp_path, image_size=(5, 5), mean=0, std=1))[0]
    assert images.shape == (3, 5, 5, 3)


def test_cifar10_from_a_local_image_tree_and_its_random_labels(tmp_path, write_png_tree, tiny_sizes, arrays, labels_of):
    write_png_tree(tmp_path / "cifar10", data.CIFAR10_CLASSES, per_split=(2, 1), size=(32, 32))
    tiny_sizes(20, 10, "cifar10", "cifar10_random")
    images, labels = arrays(data.load("cifar10", "train", data_dir=tmp_path, shuffle=False))
    assert images.shape == (20, 32, 32, 3) and labels.tolist() == sorted(list(range(10)) * 2)
    random_labels = labels_of(data.load("cifar10_random", "train", data_dir=tmp_path, shuffle=False))
    assert np.bincount(random_labels).tolist() == [2] * 10
    assert not np.array_equal(random_labels, labels)


def test_a_tree_with_other_classes_is_refused(tmp_path, write_png_tree):
    write_png_tree(tmp_path / "cifar10", ["cats", "dogs"], per_split=(1, 1))
    with pytest.raises(ValueError, match=r"class folders \['cats', 'dogs'\], expected \['airplane'"):
        data.load("cifar10", data_dir=tmp_path, download=False)


def test_cifar10_from_a_tarball_read_without_unpacking(tmp_path, write_png_tree, tiny_sizes, arrays, labels_of):
    import tarfile

    tiny_sizes(20, 10, "cifar10")
    write_png_tree(tmp_path / "tree" / "cifar10-jpg", data.CIFAR10_CLASSES, per_split=(2, 1), size=(32, 32))
    with tarfile.open(tmp_path / "cifar10-jpg.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "tree" / "cifar10-jpg", arcname="cifar10-jpg")  # with a top folder
    from_tar = arrays(data.load("cifar10", "train", data_dir=tmp_path, shuffle=False))
    from_tree = arrays(data.load("cifar10", "train", data_dir=tmp_path / "tree", shuffle=False))
    np.testing.assert_array_equal(from_tar[0], from_tree[0])
    np.testing.assert_array_equal(from_tar[1], from_tree[1])
    assert len(labels_of(data.load("cifar10", "test", data_dir=tmp_path))) == 10
    assert not (tmp_path / "cifar10-jpg").exists()
    cached = list((data.cache_dir() / "decoded").glob("cifar10-jpg-*.npz"))
    assert len(cached) >= 1
    assert not list((data.cache_dir() / "decoded").glob(".*"))  # no staging files left
