"""Tests of the literature's datasets in the catalogue (cifar100, fashion_mnist, svhn,
stl10, imagenet) and of the `random_labels` option every dataset takes.

Nothing is downloaded: the tensorflow-datasets path runs under tfds's own
`tfds.testing.mock_data`, local layouts are tiny copies written here, and
ImageNet is prepared by tfds's real imagenet2012 builder from a manual
download of a few generated JPEGs.

The data pipeline is tf.data on every backend, so the slower tests here run
in one backend's pass only (`one_backend`).
"""

import io
import pickle
import tarfile

import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import catalogue, download, streaming


@pytest.fixture
def one_backend(backend):
    if backend != "torch":
        pytest.skip("tf.data does not depend on the Keras backend; the torch pass runs it")


def test_the_literature_datasets_are_described():
    expected = {
        # name: (classes, input shape, train, test)
        "cifar100": (100, (32, 32, 3), 50_000, 10_000),
        "fashion_mnist": (10, (32, 32, 3), 60_000, 10_000),
        "svhn": (10, (32, 32, 3), 73_257, 26_032),
        "stl10": (10, (96, 96, 3), 5_000, 8_000),
        "imagenet": (1000, (224, 224, 3), 1_281_167, 50_000),
    }
    for name, (classes, shape, train, test) in expected.items():
        info = data.info(name)
        assert (info.num_classes, info.input_shape) == (classes, shape), name
        assert info.split_sizes == {"train": train, "test": test}, name
        assert len(info.mean) == len(info.std) == 3 and min(info.std) > 0.15, name
        assert len(set(info.class_names)) == classes, name
    assert data.info("cifar100").class_names == tuple(sorted(catalogue.CIFAR100_CLASSES))
    coarse = data.info("cifar100", label="coarse")
    assert coarse.num_classes == 20 and coarse.class_names[0] == "aquatic_mammals"
    assert data.info("imagenet").class_names[:2] == ("n01440764", "n01443537")  # WordNet ids, sorted
    assert data.info("imagenet").mean == (0.485, 0.456, 0.406)
    with pytest.raises(ValueError, match=r"label must be one of \['fine', 'coarse'\], got 'super'"):
        data.info("cifar100", label="super")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['label'\] for 'svhn'"):
        data.load("svhn", label="coarse")


def _raw_pixels(images, info):
    """uint8 values back from normalized images (float64), per channel."""
    return (images.astype(np.float64) * np.array(info.std) + np.array(info.mean)) * 255


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "name, options",
    [("cifar100", {}), ("cifar100", {"label": "coarse"}), ("fashion_mnist", {}), ("svhn", {}), ("stl10", {})],
)
def test_tfds_path_of_each_dataset_under_mock_data(one_backend, monkeypatch, arrays, name, options):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(download, "host_reachable", lambda host: True)  # under mock_data nothing downloads
    info = data.info(name, **options)
    with tfds.testing.mock_data(num_examples=12):
        images, labels = arrays(data.load(name, "test", batch_size=5, shuffle=False, **options))
    assert images.shape == (12, *info.input_shape) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() < info.num_classes
    # Normalized with the entry's constants: undoing them gives whole grey levels in [0, 255].
    raw = _raw_pixels(images, info)
    assert np.abs(raw - np.round(raw)).max() < 2e-3
    assert raw.min() > -2e-3 and raw.max() < 255 + 2e-3 and raw.std() > 20


def test_random_labels_is_an_option_of_every_dataset(labels_of):
    true = labels_of(data.load("mnist_subset", "test", shuffle=False))
    random = labels_of(data.load("mnist_subset", "test", shuffle=False, random_labels=True, seed=4))
    assert np.bincount(random).tolist() == [50] * 10  # balanced, as cifar10_random
    # The assignment of cifar10_random: a seeded permutation, computed here independently.
    rng = np.random.RandomState([4, 1])  # (seed, index of "test")
    assert random.tolist() == rng.permutation(np.arange(500) % 10).tolist()
    assert 0.8 < np.mean(random != true) < 0.97
    assert np.array_equal(random, labels_of(data.load("mnist_subset", "test", shuffle=False, random_labels=True, seed=4)))
    assert data.info("mnist_subset", random_labels=True) == data.info("mnist_subset")
    # Subsets are taken of the random classes.
    subset = labels_of(data.load("mnist_subset", "test", samples_per_class=3, random_labels=True))
    assert np.bincount(subset).tolist() == [3] * 10
    # cifar10_random keeps it on by default, and it can be turned off.
    assert data.DATASETS["cifar10_random"].options["random_labels"] is True


# --------------------------------------------------------------------------
# Local layouts


def _write_cifar100(folder, per_class=(2, 1)):
    """cifar-100-python/train and test: fine label k belongs to superclass k % 20."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = {}
    for name, n in zip(("train", "test"), per_class):
        fine = np.tile(np.arange(100), n)
        rows[name] = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        batch = {b"data": rows[name], b"fine_labels": fine.tolist(), b"coarse_labels": (fine % 20).tolist(),
                 b"filenames": [b"x.png"] * len(fine), b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return rows


def test_cifar100_from_its_python_pickles(tmp_path, tiny_sizes, arrays, labels_of):
    rows = _write_cifar100(tmp_path / "cifar-100-python")
    tiny_sizes(200, 100, "cifar100")
    images, labels = arrays(data.load("cifar100", "test", data_dir=tmp_path, batch_size=64))
    assert images.shape == (100, 32, 32, 3) and labels.tolist() == list(range(100))
    green_first_row = rows["test"][7, 1024:1056]  # the green plane follows the red
    np.testing.assert_allclose(images[7, 0, :, 1], (green_first_row / 255 - 0.4865) / 0.2564, atol=1e-5)
    coarse = labels_of(data.load("cifar100", "train", data_dir=tmp_path, label="coarse", shuffle=False))
    assert coarse.tolist() == [k % 20 for k in range(100)] * 2
    # A cut copy is refused: 100 classes need 100 test images each here... and a
    # superclass the wrong size is named.
    tiny_sizes(200, 200, "cifar100")
    with pytest.raises(data.CorruptDataError, match="holds 100 test examples .* where CIFAR-100 has 200"):
        data.load("cifar100", "test", data_dir=tmp_path)


def test_fashion_mnist_from_torchvision_idx_files(tmp_path, write_mnist_idx, tiny_sizes, arrays):
    write_mnist_idx(tmp_path / "FashionMNIST" / "raw", gzipped=True)
    tiny_sizes(30, 20, "fashion_mnist")
    images, labels = arrays(data.load("fashion_mnist", "train", data_dir=tmp_path, shuffle=False))
    assert images.shape == (30, 32, 32, 3) and labels.tolist() == list(range(10)) * 3
    np.testing.assert_allclose(images[:, 9, 9, 2], (10 * labels / 255 - 0.2860) / 0.3530, atol=1e-5)
    # MNIST's files directly in data_dir are not taken for Fashion-MNIST.
    write_mnist_idx(tmp_path / "only_mnist", gzipped=True)
    with pytest.raises(data.DataNotFoundError, match="Fashion-MNIST IDX files in"):
        data.load("fashion_mnist", data_dir=tmp_path / "only_mnist", download=False)


def test_svhn_and_stl10_from_class_trees(tmp_path, write_png_tree, tiny_sizes, arrays):
    write_png_tree(tmp_path / "stl10", catalogue.STL10_CLASSES, per_split=(2, 1), size=(96, 96))
    tiny_sizes(20, 10, "stl10")
    images, labels = arrays(data.load("stl10", "test", data_dir=tmp_path))
    assert images.shape == (10, 96, 96, 3) and sorted(labels) == list(range(10))
    write_png_tree(tmp_path / "svhn", catalogue.SVHN_CLASSES, per_split=(2, 1), size=(32, 32))
    tiny_sizes(20, 10, "svhn")
    assert arrays(data.load("svhn", "train", data_dir=tmp_path))[0].shape == (20, 32, 32, 3)


# --------------------------------------------------------------------------
# ImageNet: tfds's imagenet2012 prepared from a manual download of generated JPEGs


def _jpeg(image):
    import tensorflow as tf

    return tf.io.encode_jpeg(image, quality=95).numpy()


def _gradient(height, width, seed=0):
    """A smooth image: red grows left to right, green top to bottom, blue constant."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full_like(x, 40 + 20 * seed)], -1).round().astype(np.uint8)


def _add(tar, name, payload):
    member = tarfile.TarInfo(name)
    member.size = len(payload)
    tar.addfile(member, io.BytesIO(payload))


@pytest.fixture
def imagenet_dir(tmp_path):
    """data_dir/downloads/manual with ILSVRC2012_img_train.tar (2 classes x 3 JPEGs) and
    ILSVRC2012_img_val.tar (4 JPEGs; tfds knows their labels)."""
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    names = data.info("imagenet").class_names
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for k in range(2):
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w") as inner:
                for i in range(3):
                    _add(inner, f"{names[k]}_{i}.JPEG", _jpeg(_gradient(300 + 10 * i, 260, k)))
            _add(outer, f"{names[k]}.tar", inner_bytes.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in range(1, 5):
            _add(tar, f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg(_gradient(280, 350, i)))
    return tmp_path


@pytest.mark.timeout(120)
def test_imagenet_is_prepared_from_the_manual_download_and_streamed(one_backend, imagenet_dir, arrays, labels_of):
    images, labels = arrays(data.load("imagenet", "test", data_dir=imagenet_dir, batch_size=3))
    assert images.shape == (4, 224, 224, 3) and images.dtype == np.float32
    # tfds's validation labels of ILSVRC2012_val_00000001..4.
    assert sorted(labels.tolist()) == [65, 230, 809, 970]
    info = data.info("imagenet")
    raw = _raw_pixels(images, info)
    assert np.abs(raw - np.round(raw)).max() < 2e-3  # uint8 pixels, normalized in float32
    train = labels_of(data.load("imagenet", "train", data_dir=imagenet_dir, batch_size=4, augment=True))
    assert sorted(train.tolist()) == [0, 0, 0, 1, 1, 1]
    # A subset needs the stored labels: one pass, images left encoded. Here
    # 998 of the 1,000 classes are empty.
    with pytest.raises(ValueError, match="imagenet train: class 2 has 0 examples, fewer than samples_per_class=2"):
        data.load("imagenet", "train", data_dir=imagenet_dir, samples_per_class=2)
    feed = data.DATASETS["imagenet"].source.read(data.DATASETS["imagenet"], "train", imagenet_dir, False, 0, {})
    stored = feed.labels.copy()
    assert sorted(stored.tolist()) == [0, 0, 0, 1, 1, 1]
    kept = np.flatnonzero(stored == 1)[:2]
    subset = labels_of(feed.dataset(kept, stored[kept], 4, True, True, 0, False, None, None))
    assert subset.tolist() == [1, 1]
    random = labels_of(data.load("imagenet", "train", data_dir=imagenet_dir, random_labels=True, shuffle=False))
    assert random.tolist() == np.random.RandomState([0, 0]).permutation(np.arange(6) % 1000).tolist()
    # Resumable: epoch e's order and crops depend on (seed, e) only.
    two = arrays(data.load("imagenet", "train", data_dir=imagenet_dir, augment=True, epochs=range(0, 2), batch_size=6))
    second = arrays(data.load("imagenet", "train", data_dir=imagenet_dir, augment=True, epochs=range(1, 2), batch_size=6))
    np.testing.assert_array_equal(two[0][6:], second[0])
    np.testing.assert_array_equal(two[1][6:], second[1])
    assert not np.array_equal(two[0][:6], two[0][6:])


def test_imagenet_without_its_files_says_where_to_put_them(tmp_path):
    with pytest.raises(data.DataNotFoundError) as caught:
        data.load("imagenet", data_dir=tmp_path)
    message = str(caught.value)
    assert "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar in " + str(tmp_path / "downloads" / "manual") in message
    assert "not possible for this dataset" in message and "going online" not in message


def test_imagenet_evaluation_crop_matches_torchvision_on_pil():
    # Resize(256) then CenterCrop(224) on a PIL image, written here with PIL
    # (from TensorFlow's decode: JPEG decoders differ by a grey level or two).
    import tensorflow as tf
    from PIL import Image

    encoded = _jpeg(_gradient(300, 400))
    ours = streaming.resize_and_centre_crop(encoded, 224).numpy().astype(int)
    decoded = Image.fromarray(tf.io.decode_jpeg(encoded).numpy())
    resized = np.asarray(decoded.resize((int(256 * 400 / 300), 256), Image.BILINEAR)).astype(int)
    top, left = (256 - 224) // 2, (resized.shape[1] - 224) // 2
    pil = resized[top : top + 224, left : left + 224]
    assert ours.shape == pil.shape == (224, 224, 3)
    assert np.abs(ours - pil).max() <= 3 and np.abs(ours - pil).mean() < 0.6


def test_imagenet_training_crop_is_random_resized_and_flipped():
    height, width = 300, 400
    encoded = _jpeg(_gradient(height, width))
    crops = [streaming.random_resized_crop(encoded, [7, s], 224).numpy() for s in range(40)]
    assert all(c.shape == (224, 224, 3) and c.dtype == np.uint8 for c in crops)
    np.testing.assert_array_equal(crops[3], streaming.random_resized_crop(encoded, [7, 3], 224).numpy())
    # Red encodes the column (255 * x / (width - 1)), green the row: a crop
    # spans columns [c0, c1] and rows [r0, r1]; flipped when red falls.
    flipped, areas, ratios = 0, [], []
    for crop in crops:
        red, green = crop[112, :, 0].astype(float), crop[:, 112, 1].astype(float)
        flipped += red[0] > red[-1]
        cols = abs(red[-1] - red[0]) / 255 * (width - 1)
        rows = abs(green[-1] - green[0]) / 255 * (height - 1)
        areas.append(cols * rows / (height * width))
        ratios.append(cols / rows)
    assert 8 <= flipped <= 32  # p = 1/2, 40 draws
    assert min(areas) > 0.08 * 0.8 and max(areas) <= 1.0 and np.std(areas) > 0.05
    assert min(ratios) > 0.75 * 0.85 and max(ratios) < 4 / 3 * 1.15


# --------------------------------------------------------------------------
# tfds:<name>: any tensorflow-datasets image classification set


@pytest.mark.timeout(120)
def test_any_tfds_image_classification_set_under_mock_data(one_backend, monkeypatch, arrays):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(download, "host_reachable", lambda host: True)
    with tfds.testing.mock_data(num_examples=9):
        info = data.info("tfds:beans")
        images, labels = arrays(data.load("tfds:beans", "test", batch_size=4, shuffle=False))
    assert info.class_names == ("angular_leaf_spot", "bean_rust", "healthy")
    assert info.input_shape == (500, 500, 3) and info.split_sizes == {"train": 9, "test": 9}
    assert images.shape == (9, 500, 500, 3) and set(labels.tolist()) <= {0, 1, 2}
    # Normalized with the training split's own statistics (mock data: uniform pixels).
    assert len(info.mean) == 3 and all(0.4 < m < 0.6 for m in info.mean)
    assert all(0.25 < s < 0.33 for s in info.std)
    raw = _raw_pixels(images, info)
    assert np.abs(raw - np.round(raw)).max() < 5e-3 and raw.min() > -5e-3 and raw.max() < 255.005
    # Given constants are used as they are.
    with tfds.testing.mock_data(num_examples=9):
        given = data.info("tfds:beans", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        small, _ = arrays(data.load("tfds:imagenette", "test", image_size=(64, 64), batch_size=4))
    assert given.mean == (0.5, 0.5, 0.5) and given.std == (0.25, 0.25, 0.25)
    # Images of different sizes: decoded per batch at image_size (resize, centre crop).
    assert small.shape == (9, 64, 64, 3)


def test_tfds_sets_that_are_not_image_classification_are_refused():
    with pytest.raises(ValueError, match="tfds:coco is not an image classification dataset"):
        data.info("tfds:coco")
    with pytest.raises(ValueError, match="tfds:imdb_reviews is not an image classification dataset"):
        data.load("tfds:imdb_reviews")
    with pytest.raises(ValueError, match="tensorflow-datasets has no dataset 'no_such_set'"):
        data.info("tfds:no_such_set")
    with pytest.raises(ValueError, match="holds images of different sizes"):
        data.info("tfds:imagenette")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['label'\] for 'tfds:beans'"):
        data.info("tfds:beans", label="fine")
    assert "- tfds:<name>: any tensorflow-datasets image classification set" in data.describe()
