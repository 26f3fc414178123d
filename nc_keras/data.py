"""Input pipelines for the experiments of Zhu et al. (NeurIPS 2021), Sec. 4.

`load(name, split)` returns a batched, prefetched `tf.data.Dataset` of
`(images, labels)`: float32 NHWC images and int32 labels, which
`model.fit` accepts on the TensorFlow, JAX and torch backends alike.
`info(name)` says the number of classes, the input shape and the split sizes
without reading any data.

Datasets (`name`):

- `"cifar10"`: CIFAR-10, normalized per channel with mean
  (0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994, 0.2010), the constants
  of the paper's reference code (Sec. 4.1, Fig. 3).
- `"mnist"`: MNIST, resized 28x28 -> 32x32, grey copied to 3 channels,
  normalized with mean 0.1307 and std 0.3081 (Sec. 4.1).
- `"cifar10_random"`: CIFAR-10 images whose labels are all replaced by a
  fixed random assignment, balanced: exactly 5,000 per class in train and
  1,000 in test (Sec. 4.2, Fig. 4).
- `"random_pixels"`: images of independent uniform [0, 1) pixels (not
  normalized) with balanced random labels; generated from `seed`, no
  download (Sec. 4.2, Fig. 4). Options: `image_shape=(32, 32, 3)`,
  `num_classes=10`, `train_size=50_000`, `test_size=10_000`.
- `"mnist_subset"`: 100 training and 50 test images per class of MNIST,
  shipped inside the package (`nc_keras/assets/mnist_subset.npz`), so it
  works offline with nothing else; preprocessed as `"mnist"`.
- `"folder"`: the user's own class-folder image tree at `data_dir`
  (`train/<class>/*.png|jpg`, `test/<class>/...`; classes in sorted folder
  order). Options: `image_size=(h, w)` to resize (bilinear) when the images
  differ in size, `channels=3`, and `mean`/`std` (per channel, on the [0, 1]
  scale; by default computed from the tree's training split).

Where the data comes from, in this order (for cifar10, cifar10_random, mnist):

1. tensorflow-datasets, when the dataset is already prepared in `data_dir`
   (used as a tfds data dir) or in tfds's default data dir;
2. local files under `data_dir`, which is what offline machines use:
   - MNIST: the four IDX files (`train-images-idx3-ubyte`,
     `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
     `t10k-labels-idx1-ubyte`, each gzipped or raw) in `data_dir`,
     `data_dir/mnist` or `data_dir/MNIST/raw` (torchvision's layout);
   - CIFAR-10: a class-folder tree (`train/<class>/*.jpg|png`,
     `test/<class>/...`, folders named airplane ... truck) in `data_dir`,
     `data_dir/cifar10` or `data_dir/cifar10-jpg`, or a tarball of such a
     tree (`data_dir/cifar10-jpg.tar.gz`, read without unpacking), or the
     python pickles `data_dir/cifar-10-batches-py` (torchvision's layout);
3. tensorflow-datasets downloading into `data_dir` (or its default dir),
   tried only when `download=True` and the download host answers within a
   few seconds, so that offline machines fail at once instead of retrying;
4. otherwise `DataNotFoundError`, naming the dataset, every place searched
   and the fixes.

The local MNIST files are read directly, not through tfds: tfds checks the
checksums of the downloaded .gz files, and a re-compressed copy fails them
although its contents are the original ones.

Decoded data. Every split is decoded once into uint8 arrays held in memory
(CIFAR-10 train: 150 MB; MNIST train at 32x32: 61 MB), then every batch is
gathered from them, augmented and normalized in a vectorized step. Decoding
images is the slow part (CIFAR-10 JPEG: about 15 s on 2 cores), so decoded
image trees and tarballs are cached on disk, as uncompressed `.npz` files in
`decoded/` under the cache dir: `$NC_KERAS_CACHE`, else
`$XDG_CACHE_HOME/nc_keras`, else `~/.cache/nc_keras` (CIFAR-10: 185 MB, one
file for a tarball, one per split for a tree). A tree's entry is keyed by
its path and its files' names, sizes and modification times, a tarball's by
its path, size and modification time, so changed data is decoded again.
Delete the folder at any time to reclaim the space. Tarballs are read
straight from the archive, never unpacked.

Preprocessing follows the reference code's torchvision transforms:

- MNIST: `transforms.Resize(32)` on the 28x28 PIL image, `ToTensor`,
  `Normalize`. PIL upsamples bilinearly (pixel centres at half-integers) and
  rounds back to uint8; here `tf.image.resize(..., "bilinear")` (same pixel
  centres, no antialiasing, which only matters when shrinking) followed by
  rounding to uint8 reproduces it to within one grey level. The grey channel
  is then repeated three times, so that the 3-channel networks of the paper
  take MNIST unchanged.
- `augment=True` (Sec. 4.3, Fig. 5): `RandomCrop(32, padding=4)` (zero
  padding of the raw image, i.e. black, before normalization) and
  `RandomHorizontalFlip()`, each image independently; applied to the
  training split only and ignored for other splits, so that one set of
  arguments serves both splits.

Subsets and randomness:

- `samples_per_class=n` keeps the first n examples of each class in the
  split's stored order (file order for IDX files and pickles, sorted file
  names for image trees, tfds's order for tfds, index order for
  random_pixels); it is the same subset on every call, whatever the seed.
  A class with fewer than n examples raises `ValueError`. For
  cifar10_random the classes are the random labels.
- `seed` fixes the random labels (cifar10_random, random_pixels), the random
  pixels, the shuffling order and the augmentation. Random labels come from
  numpy's legacy `RandomState`, whose streams numpy keeps stable across
  versions and machines, so a seed gives the same labels everywhere.
- `shuffle=None` shuffles the training split only (reshuffled every epoch).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import importlib.resources
import logging
import os
import pickle
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

__all__ = ["DataNotFoundError", "DatasetInfo", "NAMES", "cache_dir", "info", "load", "read_idx"]

NAMES = ("cifar10", "mnist", "cifar10_random", "random_pixels", "mnist_subset", "folder")
SPLITS = ("train", "test")

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
MNIST_CLASSES = tuple(str(digit) for digit in range(10))

# The reference code's transforms.Normalize constants (SPEC section 4). The
# CIFAR-10 "std" values are not the dataset's pixel std (about 0.247, 0.243,
# 0.261) but the widely copied mean of per-image stds; the paper used them.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
MNIST_MEAN = (0.1307,) * 3
MNIST_STD = (0.3081,) * 3

_MNIST_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Hosts tfds downloads these datasets from; probed before a download because
# tfds's own downloader retries for minutes when offline.
_TFDS_HOSTS = {"mnist": "storage.googleapis.com", "cifar10": "www.cs.toronto.edu"}
_PROBE_TIMEOUT_S = 3.0
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
_LOG = logging.getLogger(__name__)  # says which source each load() used


class DataNotFoundError(FileNotFoundError):
    """No source holds the requested dataset; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like once loaded.

    `input_shape` is the shape of one preprocessed image (HWC), `split_sizes`
    the number of examples per split (before `samples_per_class`),
    `mean`/`std` the per-channel normalization constants (None: not
    normalized).
    """

    name: str
    num_classes: int
    input_shape: tuple
    split_sizes: dict
    class_names: tuple
    mean: tuple | None = None
    std: tuple | None = None


# --------------------------------------------------------------------------
# Public API


def info(name, data_dir=None, **options):
    """Describe dataset `name` (see the module docstring) without loading it.

    Only `"folder"` needs `data_dir`: its classes and sizes are read from the
    tree, and unless `mean` and `std` are given its training split is
    decoded (and cached) to compute them. `"random_pixels"` and `"folder"`
    take the same options as in `load`.
    """
    _check_name(name)
    _check_options(name, options)
    if name in ("cifar10", "cifar10_random"):
        return DatasetInfo(
            name, 10, (32, 32, 3), {"train": 50_000, "test": 10_000},
            CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD,
        )  # fmt: skip
    if name == "mnist":
        return DatasetInfo(
            name, 10, (32, 32, 3), {"train": 60_000, "test": 10_000},
            MNIST_CLASSES, MNIST_MEAN, MNIST_STD,
        )  # fmt: skip
    if name == "mnist_subset":
        sizes = {split: len(_mnist_subset(split)[1]) for split in SPLITS}
        return DatasetInfo(name, 10, (32, 32, 3), sizes, MNIST_CLASSES, MNIST_MEAN, MNIST_STD)
    if name == "random_pixels":
        opts = _random_pixels_options(options)
        sizes = {"train": opts["train_size"], "test": opts["test_size"]}
        classes = tuple(str(k) for k in range(opts["num_classes"]))
        return DatasetInfo(name, opts["num_classes"], opts["image_shape"], sizes, classes)
    # folder
    root = _folder_root(data_dir)
    classes = _tree_classes(root / "train")
    sizes = {split: len(_tree_files(root / split, classes)[0]) for split in SPLITS}
    channels = options.get("channels", 3)
    if options.get("image_size"):
        height, width = options["image_size"]
    else:
        height, width = _first_image_size(_tree_files(root / "train", classes)[0][0])
    mean, std = _folder_stats(root, options)
    return DatasetInfo(name, len(classes), (height, width, channels), sizes, classes, mean, std)


def load(
    name,
    split="train",
    batch_size=128,
    data_dir=None,
    samples_per_class=None,
    augment=False,
    shuffle=None,
    seed=0,
    *,
    download=True,
    drop_remainder=False,
    **options,
):
    """Load one split of a dataset as a batched, prefetched `tf.data.Dataset`.

    Args:
        name: one of `NAMES` (see the module docstring for each).
        split: `"train"` or `"test"`.
        batch_size: examples per batch.
        data_dir: where local files or prepared tfds data live (see the
            module docstring for the layouts searched); required for
            `"folder"`.
        samples_per_class: keep only the first n examples of every class
            (balanced, the same on every call); `ValueError` if a class has
            fewer.
        augment: random crop with 4 pixels of zero padding and random
            horizontal flip, training split only (ignored for "test").
        shuffle: shuffle the examples, reshuffled every epoch; `None` means
            shuffle the training split only.
        seed: fixes random labels, random pixels, the shuffle and the
            augmentation.
        download: allow tensorflow-datasets to download (when online).
        drop_remainder: drop the last, smaller batch.
        **options: dataset options: `image_shape`, `num_classes`,
            `train_size`, `test_size` for random_pixels; `image_size`,
            `channels`, `mean`, `std` for folder.

    Returns:
        A `tf.data.Dataset` yielding `(images, labels)`: float32 of shape
        `(batch, height, width, channels)` and int32 of shape `(batch,)`.

    Raises:
        DataNotFoundError: no source has the dataset.
        ValueError: unknown name/split/option, or too few examples per class.
    """
    import tensorflow as tf

    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _check_options(name, options)
    if shuffle is None:
        shuffle = split == "train"
    augment = bool(augment) and split == "train"

    source = _source(name, split, data_dir, download, seed, options)
    _LOG.info("%s %s: %d examples from %s", name, split, len(source.labels), source.description)
    indices = np.arange(len(source.labels))
    if samples_per_class is not None:
        indices = _first_per_class(source.labels, samples_per_class, source.num_classes, name, split)
    labels = source.labels[indices].astype(np.int32)

    # The dataset holds positions only; each batch gathers its images from
    # the in-memory arrays in one vectorized op, much faster than slicing
    # and shuffling 50,000 separate image tensors.
    dataset = tf.data.Dataset.from_tensor_slices((indices.astype(np.int64), labels))
    if shuffle:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    fetch, normalize = source.fetch_fn(), source.normalize_fn()
    if augment:
        # One fresh random seed pair per batch, a new stream every epoch.
        batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, batch_seeds)

        def make_batch(batch, rng_seed):
            positions, y = batch
            return normalize(_augment(fetch(positions), rng_seed)), y

    else:

        def make_batch(positions, y):
            return normalize(fetch(positions)), y

    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def cache_dir():
    """The folder holding decoded image trees and tarballs (module docstring)."""
    if os.environ.get("NC_KERAS_CACHE"):
        return Path(os.environ["NC_KERAS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nc_keras"


# --------------------------------------------------------------------------
# Sources: where the uint8 arrays come from


class _ArraySource:
    """Decoded uint8 images (N, H, W, C) and labels, plus the preprocessing."""

    def __init__(self, images, labels, num_classes, mean, std, description):
        self.images, self.labels = images, labels
        self.num_classes, self.mean, self.std = num_classes, mean, std
        self.description = description

    def fetch_fn(self):
        import tensorflow as tf

        images = tf.constant(self.images)
        channels_out = len(self.mean)

        def fetch(positions):
            batch = tf.gather(images, positions)
            if batch.shape[-1] != channels_out:  # grey MNIST -> 3 channels
                batch = tf.repeat(batch, channels_out, axis=-1)
            return batch

        return fetch

    def normalize_fn(self):
        import tensorflow as tf

        mean = tf.constant(self.mean, tf.float32)
        std = tf.constant(self.std, tf.float32)

        def normalize(batch):
            return (tf.cast(batch, tf.float32) / 255.0 - mean) / std

        return normalize


class _RandomPixelSource:
    """Uniform [0, 1) pixels computed from (seed, split, example index).

    Each pixel is a 32-bit integer hash of its coordinates (not a stateful
    generator), so an example's image is the same whatever the batch, the
    shuffle or the machine, and nothing is stored (50,000 float images
    would take 600 MB).
    """

    def __init__(self, split, seed, image_shape, labels, num_classes):
        self.split, self.seed, self.image_shape = split, seed, tuple(image_shape)
        self.labels, self.num_classes = labels, num_classes
        self.description = f"generated from seed {seed}"

    def fetch_fn(self):
        import tensorflow as tf

        key = int(_split_key(self.seed, self.split))
        pixels_per_image = int(np.prod(self.image_shape))

        def fetch(positions):
            index = tf.cast(positions, tf.uint32)[:, None]
            pixel = tf.constant(np.arange(pixels_per_image, dtype=np.uint32)[None, :])
            row = _hash32_tf(tf.bitwise.bitwise_xor(index, tf.constant(key, tf.uint32)))
            bits = _hash32_tf(row + pixel * tf.constant(0x9E3779B9, tf.uint32))
            top24 = tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32))
            values = tf.cast(top24, tf.float32) * (1.0 / (1 << 24))
            return tf.reshape(values, (-1, *self.image_shape))

        return fetch

    def normalize_fn(self):
        return lambda batch: batch  # the paper's random pixels are used as is


def random_pixels_reference(seed, split, index, image_shape=(32, 32, 3)):
    """Numpy reference for one random-pixels image (for checks and tests)."""
    key = _split_key(seed, split)
    row = _hash32_np(np.uint32(index) ^ key)
    pixel = np.arange(int(np.prod(image_shape)), dtype=np.uint32)
    with np.errstate(over="ignore"):
        bits = _hash32_np(row + pixel * np.uint32(0x9E3779B9))
    return ((bits >> 8).astype(np.float32) / (1 << 24)).reshape(image_shape)


def _split_key(seed, split):
    # Any Python int seed, negative or beyond 32 bits, maps to its own key.
    digest = hashlib.sha256(f"nc_keras.random_pixels:{int(seed)}:{split}".encode()).digest()
    return np.uint32(int.from_bytes(digest[:4], "big"))


def _hash32_np(x):
    # "lowbias32" integer hash (C. Wellons): cheap, well mixed, exact in uint32.
    x = np.asarray(x, np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        x = x ^ (x >> np.uint32(16))
    return x


def _hash32_tf(x):
    import tensorflow as tf

    def xorshift(x, bits):
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(bits, tf.uint32)))

    x = xorshift(x, 16) * tf.constant(0x7FEB352D, tf.uint32)
    x = xorshift(x, 15) * tf.constant(0x846CA68B, tf.uint32)
    return xorshift(x, 16)


def _source(name, split, data_dir, download, seed, options):
    if name == "random_pixels":
        opts = _random_pixels_options(options)
        size = opts[f"{split}_size"]
        labels = _balanced_random_labels(size, opts["num_classes"], seed, split)
        return _RandomPixelSource(split, seed, opts["image_shape"], labels, opts["num_classes"])
    if name == "folder":
        root = _folder_root(data_dir)
        images, labels, classes = _decoded_tree(
            root, split, options.get("channels", 3), _size_option(options)
        )
        mean, std = _folder_stats(root, options)
        return _ArraySource(images, labels, len(classes), mean, std, str(root))
    if name == "mnist_subset":
        images, labels = _mnist_subset(split)
        return _ArraySource(
            _resize_mnist(images), labels, 10, MNIST_MEAN, MNIST_STD, "nc_keras/assets"
        )
    base = "cifar10" if name.startswith("cifar10") else "mnist"
    images, labels, where = _find_real(base, split, data_dir, download)
    if base == "mnist":
        return _ArraySource(images, labels, 10, MNIST_MEAN, MNIST_STD, where)
    if name == "cifar10_random":
        labels = _balanced_random_labels(len(labels), 10, seed, split)
    return _ArraySource(images, labels, 10, CIFAR10_MEAN, CIFAR10_STD, where)


def _find_real(base, split, data_dir, download):
    """(images uint8 NHWC, labels, description) of cifar10 or mnist (32x32).

    Sources in the order of the module docstring; MNIST comes back already
    resized to 32x32x1.
    """
    searched = []
    tfds_dirs = ([str(data_dir)] if data_dir else []) + [None]
    for tfds_dir in tfds_dirs:
        builder = _tfds_builder(base, tfds_dir)
        if builder is not None and builder.is_prepared():
            return (*_read_tfds(builder, split), f"tfds data in {builder.data_dir}")
        searched.append(
            f"tensorflow-datasets prepared data in "
            f"{builder.data_dir if builder is not None else tfds_dir}"
        )

    if data_dir is not None:
        found, local_searched = _read_local(base, split, Path(data_dir).expanduser().resolve())
        if found is not None:
            return found
        searched += local_searched
    else:
        searched.append("local files: none, data_dir was not given")

    host = _TFDS_HOSTS[base]
    if not download:
        searched.append("tensorflow-datasets download: not tried, download=False")
    elif not _host_reachable(host):
        searched.append(f"tensorflow-datasets download: {host} unreachable (offline?)")
    else:
        builder = _tfds_builder(base, str(data_dir) if data_dir else None)
        try:
            builder.download_and_prepare()
            return (*_read_tfds(builder, split), f"tfds data in {builder.data_dir}")
        except Exception as error:  # noqa: BLE001 - reported below, in one message
            searched.append(f"tensorflow-datasets download: failed ({type(error).__name__}: {error})")
    raise DataNotFoundError(_not_found_message(base, searched)) from None


def _not_found_message(base, searched):
    if base == "mnist":
        layout = (
            "a directory holding the four MNIST IDX files, gzipped or raw: "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (directly, in "
            "mnist/ or in MNIST/raw/), or a class-folder tree train/0..9/*.png, test/0..9/*.png"
        )
    else:
        layout = (
            "a directory holding a class-folder tree train/<class>/*.jpg|png and "
            "test/<class>/*.jpg|png with the ten classes airplane ... truck "
            "(directly, in cifar10/ or cifar10-jpg/), a tarball of that tree "
            "named cifar10-jpg.tar.gz, or torchvision's cifar-10-batches-py/"
        )
    places = "\n".join(f"  - {place}" for place in searched)
    return (
        f"dataset {base!r} not found. Searched:\n{places}\n"
        f"Fix it by either:\n"
        f"  - going online once, so tensorflow-datasets can download and prepare "
        f"it (into data_dir, or its default data dir);\n"
        f"  - or pointing data_dir at local files: {layout}."
    )


def _tfds_builder(base, tfds_dir):
    try:
        import tensorflow_datasets as tfds

        return tfds.builder(base, data_dir=tfds_dir)
    except Exception:  # noqa: BLE001 - tfds missing or broken: other sources remain
        return None


def _read_tfds(builder, split):
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    images, labels = [], []
    for x, y in tfds.as_numpy(dataset.batch(4096)):
        images.append(x)
        labels.append(y)
    images = np.concatenate(images)
    if builder.name == "mnist":
        images = _resize_mnist(images)
    return images, np.concatenate(labels).astype(np.int64)


def _host_reachable(host, timeout=_PROBE_TIMEOUT_S):
    """True when `host` answers an HTTPS request (any status) within `timeout` s.

    A TLS handshake with certificate checks, not a bare TCP connect: some
    sandboxes accept every connection through a proxy and then go silent.
    """
    connection = http.client.HTTPSConnection(host, timeout=timeout)
    try:
        connection.request("HEAD", "/")
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
        return False
    finally:
        connection.close()


_LOCAL_CACHE = {}  # (base, split, data_dir) -> (images, labels, description)


def _read_local(base, split, data_dir):
    """((images, labels, description) or None, places searched) under data_dir.

    What was found is kept per process (read-only arrays, the last 4 splits),
    so that loading a split again, e.g. for every evaluation, costs nothing;
    a miss is not kept, so files put there later are found.
    """
    key = (base, split, data_dir)
    if key in _LOCAL_CACHE:
        return _LOCAL_CACHE[key], []
    found, searched = _read_local_uncached(base, split, data_dir)
    if found is not None:
        for array in found[:2]:
            array.flags.writeable = False
        while len(_LOCAL_CACHE) >= 4:
            _LOCAL_CACHE.pop(next(iter(_LOCAL_CACHE)))
        _LOCAL_CACHE[key] = found
    return found, searched


def _read_local_uncached(base, split, data_dir):
    searched = []
    if base == "mnist":
        for folder in (data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"):
            paths = [_find_idx(folder, stem) for stem in _MNIST_IDX_STEMS[split]]
            if all(paths):
                images, labels = read_idx(paths[0]), read_idx(paths[1]).astype(np.int64)
                if len(images) != len(labels):
                    raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels for {split}")
                images = _resize_mnist(images[..., None])
                return (images, labels, f"IDX files in {folder}"), searched
            searched.append(f"MNIST IDX files in {folder}")
        trees = (data_dir, data_dir / "mnist")
        channels, classes = 1, MNIST_CLASSES
    else:
        pickles = data_dir / "cifar-10-batches-py"
        if (pickles / "test_batch").is_file():
            return (*_read_cifar_pickles(pickles, split), f"pickles in {pickles}"), searched
        searched.append(f"CIFAR-10 python pickles in {pickles}")
        tarball = data_dir / "cifar10-jpg.tar.gz"
        if tarball.is_file():
            splits, found = _decoded_tarball(tarball, 3)
            _check_classes(found, CIFAR10_CLASSES, tarball)
            return (*splits[split], f"tarball {tarball}"), searched
        searched.append(f"CIFAR-10 tarball {tarball}")
        trees = (data_dir, data_dir / "cifar10", data_dir / "cifar10-jpg")
        channels, classes = 3, CIFAR10_CLASSES
    for tree in trees:
        if (tree / "train").is_dir() and (tree / "test").is_dir():
            _check_classes(_tree_classes(tree / "train"), classes, tree)
            images, labels, _ = _decoded_tree(tree, split, channels, None)
            if base == "mnist":
                images = _resize_mnist(images)
            return (images, labels, f"image tree {tree}"), searched
        searched.append(f"class-folder tree {tree}/train, {tree}/test")
    return None, searched


def _check_classes(found, expected, where):
    # Sorted folder names give the canonical label order for both datasets
    # (CIFAR-10's class names happen to be alphabetical, MNIST's are digits).
    if tuple(found) != tuple(expected):
        raise ValueError(f"{where}: class folders {list(found)}, expected {list(expected)}")


def _find_idx(folder, stem):
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_idx(path):
    """Read an IDX file (gzipped or raw): big-endian header, uint8 payload."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, payload has {payload.size} bytes")
    return payload.reshape(shape)


def _read_cifar_pickles(folder, split):
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for batch_name in names:
        with open(folder / batch_name, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        # Rows are 3072 bytes: the red plane, then green, then blue (CHW).
        images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int64))
    return np.concatenate(images), np.concatenate(labels)


@lru_cache(maxsize=2)
def _mnist_subset(split):
    asset = importlib.resources.files("nc_keras") / "assets" / "mnist_subset.npz"
    with importlib.resources.as_file(asset) as path, np.load(path) as arrays:
        return arrays[f"x_{split}"][..., None], arrays[f"y_{split}"].astype(np.int64)


def _resize_mnist(images):
    """28x28x1 uint8 -> 32x32x1 uint8 as torchvision's Resize(32) on PIL does."""
    import tensorflow as tf

    if images.shape[1:3] == (32, 32):
        return images
    out = np.empty((len(images), 32, 32, 1), np.uint8)
    for start in range(0, len(images), 10_000):  # bounds the float32 temporary
        chunk = tf.image.resize(images[start : start + 10_000], (32, 32), method="bilinear")
        out[start : start + 10_000] = np.clip(np.round(chunk.numpy()), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------
# Labels and subsets


def _balanced_random_labels(size, num_classes, seed, split):
    """A seeded permutation of [0, 1, ..., K-1, 0, 1, ...]: balanced when K | size."""
    rng = np.random.RandomState([seed, SPLITS.index(split)])
    return rng.permutation(np.arange(size) % num_classes).astype(np.int64)


def _first_per_class(labels, n, num_classes, name, split):
    if int(n) != n or n < 1:
        raise ValueError(f"samples_per_class must be a positive integer, got {n!r}")
    chosen = []
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        if len(members) < n:
            raise ValueError(
                f"{name} {split}: class {k} has {len(members)} examples, "
                f"fewer than samples_per_class={n}"
            )
        chosen.append(members[: int(n)])
    return np.sort(np.concatenate(chosen))  # keep the stored order


# --------------------------------------------------------------------------
# Image trees and the on-disk cache


def _folder_root(data_dir):
    if data_dir is None:
        raise ValueError('load("folder") needs data_dir: a folder with train/<class>/ and test/<class>/')
    root = Path(data_dir).expanduser()
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataNotFoundError(
            f"dataset 'folder' not found: {root} must hold train/<class>/*.png|jpg and "
            f"test/<class>/*.png|jpg (one sub-folder per class, the same classes in both)"
        )
    return root


def _tree_classes(split_dir):
    classes = tuple(sorted(p.name for p in split_dir.iterdir() if p.is_dir()))
    if not classes:
        raise DataNotFoundError(f"{split_dir} has no class folders")
    return classes


def _tree_files(split_dir, classes):
    """Image paths and labels, classes in the given order, files sorted by name."""
    found = _tree_classes(split_dir)
    if not set(found) <= set(classes):
        raise ValueError(f"{split_dir} has class folders {sorted(set(found) - set(classes))} not in train/")
    paths, labels = [], []
    for label, class_name in enumerate(classes):
        folder = split_dir / class_name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES) if folder.is_dir() else []
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataNotFoundError(f"{split_dir} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    return paths, np.asarray(labels, np.int64)


def _size_option(options):
    size = options.get("image_size")
    return tuple(int(s) for s in size) if size else None


@lru_cache(maxsize=4)
def _decoded_tree(root, split, channels, image_size):
    """(images uint8 NHWC, labels, classes) of root/split, cached on disk."""
    classes = _tree_classes(root / "train")
    paths, labels = _tree_files(root / split, classes)
    fingerprint = hashlib.sha256(repr((str(root.resolve()), split, channels, image_size)).encode())
    for path in paths:
        stat = path.stat()
        fingerprint.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    cached = cache_dir() / "decoded" / f"{root.name}-{split}-{fingerprint.hexdigest()[:16]}.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            return arrays["images"], arrays["labels"], classes
    encoded = [path.read_bytes() for path in paths]
    images = _decode_images(encoded, channels, image_size, where=f"{root / split} ({paths[0].name})")
    _atomic_savez(cached, images=images, labels=labels)
    return images, labels, classes


@lru_cache(maxsize=2)
def _decoded_tarball(tarball, channels):
    """({split: (images, labels)}, classes) of a tarball of a class-folder tree.

    Read straight from the archive (members `[top/]train/<class>/<file>` and
    `[top/]test/...`), never unpacked: reading 60,000 small members takes
    seconds where writing them out as files takes far longer. The decoded
    arrays are cached on disk, keyed by the tarball's path, size and time.
    """
    stat = tarball.stat()
    stamp = repr((str(tarball.resolve()), stat.st_size, stat.st_mtime_ns, channels))
    name = tarball.name.split(".tar")[0]
    cached = cache_dir() / "decoded" / f"{name}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            splits = {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in SPLITS}
            return splits, tuple(arrays["classes"].tolist())
    members = {split: [] for split in SPLITS}
    with tarfile.open(tarball, "r|*") as archive:  # one streaming pass
        for member in archive:
            parts = PurePosixPath(member.name).parts
            if (
                member.isfile()
                and len(parts) >= 3
                and parts[-3] in members
                and PurePosixPath(parts[-1]).suffix.lower() in _IMAGE_SUFFIXES
            ):
                members[parts[-3]].append((parts[-2], parts[-1], archive.extractfile(member).read()))
    classes = tuple(sorted({class_name for class_name, _, _ in members["train"]}))
    if not classes:
        raise DataNotFoundError(f"{tarball} holds no train/<class>/<image> members")
    splits = {}
    for split, found in members.items():
        found.sort(key=lambda item: (classes.index(item[0]) if item[0] in classes else -1, item[1]))
        if not found or found[0][0] not in classes:
            raise ValueError(f"{tarball}: {split}/ is empty or has classes not in train/")
        labels = np.asarray([classes.index(class_name) for class_name, _, _ in found], np.int64)
        images = _decode_images([data for _, _, data in found], channels, None, where=f"{tarball}:{split}")
        splits[split] = (images, labels)
    arrays = {f"{s}_{kind}": splits[s][i] for s in SPLITS for i, kind in enumerate(("images", "labels"))}
    _atomic_savez(cached, classes=np.asarray(classes), **arrays)
    return splits, classes


def _image_size(encoded):
    import tensorflow as tf

    shape = tf.io.decode_image(encoded, expand_animations=False).shape
    return int(shape[0]), int(shape[1])


def _first_image_size(path):
    return _image_size(Path(path).read_bytes())


def _decode_images(encoded, channels, image_size, where):
    """Decode a list of PNG/JPEG/BMP/GIF byte strings into one uint8 NHWC array."""
    import tensorflow as tf

    height, width = image_size or _image_size(encoded[0])

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        if image_size:
            image = tf.image.resize(image, (height, width), method="bilinear")
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        # Fails (caught below) when an image has another size than the first.
        return tf.ensure_shape(image, (height, width, channels))

    dataset = tf.data.Dataset.from_tensor_slices(encoded)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
    try:
        return np.concatenate([batch.numpy() for batch in dataset])
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(
            f"images in {where} differ in size from the first one ({height}x{width}); "
            f"pass image_size=(height, width) to resize them"
        ) from error


def _folder_stats(root, options):
    """Per-channel (mean, std) on the [0, 1] scale: given, or of the train split."""
    channels = options.get("channels", 3)
    if options.get("mean") is not None and options.get("std") is not None:
        return tuple(np.broadcast_to(options["mean"], channels)), tuple(np.broadcast_to(options["std"], channels))
    images, _, _ = _decoded_tree(root, "train", channels, _size_option(options))
    pixels = images.reshape(-1, channels).astype(np.float64) / 255.0
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-6)) for s in std)


def _atomic_savez(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=path.parent)
    with os.fdopen(handle, "wb") as out:
        np.savez(out, **arrays)
    os.replace(staging, path)


# --------------------------------------------------------------------------
# Augmentation


def _augment(batch, rng_seed):
    """RandomCrop(size, padding=4) with zero fill + RandomHorizontalFlip, per image.

    Vectorized over the batch: every image gets its own offsets and flip from
    one stateless draw, so a batch costs a pad and two gathers.
    """
    import tensorflow as tf

    pad = 4
    shape = tf.shape(batch)
    n, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(batch, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform((n, 2), seed=rng_seed, maxval=2 * pad + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform((n,), seed=rng_seed[::-1], maxval=2, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    # Flipping = reading the cropped columns right to left.
    cols = tf.where(flips[:, None] == 1, tf.reverse(cols, axis=[1]), cols)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


# --------------------------------------------------------------------------
# Argument checks


def _check_name(name):
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {NAMES}")


_OPTIONS = {
    "random_pixels": {"image_shape", "num_classes", "train_size", "test_size"},
    "folder": {"image_size", "channels", "mean", "std"},
}


def _check_options(name, options):
    unknown = set(options) - _OPTIONS.get(name, set())
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for {name!r}; "
            f"it takes {sorted(_OPTIONS.get(name, set())) or 'none'}"
        )


def _random_pixels_options(options):
    opts = {"image_shape": (32, 32, 3), "num_classes": 10, "train_size": 50_000, "test_size": 10_000}
    opts.update({k: v for k, v in options.items() if k in opts})
    opts["image_shape"] = tuple(int(s) for s in opts["image_shape"])
    return opts
