"""Where a catalogue entry's examples come from: the five kinds of source.

- `Files`: a public dataset, searched in this order:
  1. tensorflow-datasets, when the dataset is already prepared in `data_dir`
     (used as a tfds data dir) or in tfds's default data dir;
  2. local files under `data_dir`, which is what offline machines use: the
     entry's layouts in order (`IdxFiles`, `CifarPickles`, `TreeTarball`,
     `ClassTree`);
  3. a tensorflow-datasets download into `data_dir` (or its default dir),
     tried only when `download=True` and the download host answers within a
     few seconds (`nc_keras.data.download.host_reachable`), so that offline
     machines fail at once instead of retrying;
  4. otherwise `DataNotFoundError`, naming the dataset, every place searched
     and the fixes.
  Local files are read directly, not through tfds: tfds checks the checksums
  of the downloaded .gz files, and a re-compressed copy fails them although
  its contents are the original ones. Instead they are read to their end and
  checked against the entry's classes and split sizes
  (`nc_keras.data.integrity`): a cut or damaged file raises
  `CorruptDataError` naming it.
- `Bundled`: an array file shipped in `nc_keras/assets`.
- `RandomPixels`: generated from the seed (`nc_keras.data.synthetic`).
- `ClassFolders`: the user's class-folder tree at `data_dir`.
- `TfdsImages`: any tensorflow-datasets image classification set,
  `tfds:<name>`, described by its `DatasetInfo`.

A `Files` dataset too large for memory (ImageNet) is decoded batch by
batch (`nc_keras.data.streaming`); the others are decoded once into uint8
arrays (`ArrayFeed`).

A source says which options its datasets take (`options`, with their
defaults), what it knows only at run time (`properties`, merged into
`DatasetInfo`), and opens a split as a feed (`read`): the labels plus the
functions that gather and normalize a batch of images.
"""

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from nc_keras.data import download as tfds_download
from nc_keras.data import image_tree, readers, streaming, synthetic
from nc_keras.data.integrity import Expected
from nc_keras.data.readers import DataNotFoundError
from nc_keras.io_utils import write_json


class ArrayFeed:
    """Decoded uint8 images (N, H, W, C) in memory, their labels and normalization.

    `fetch_fn()` gathers a batch of positions (grey images are repeated to
    as many channels as `mean` has); `normalize_fn()` maps uint8 to
    `(x / 255 - mean) / std` in float32.
    """

    def __init__(self, images, labels, num_classes, mean, std, description):
        self.images, self.labels = images, labels
        self.num_classes, self.mean, self.std = num_classes, mean, std
        self.description = description

    @property
    def size(self):
        return len(self.labels)

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


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """One of a dataset's label sets (CIFAR-100's 20 superclasses), chosen by `label=`.

    Attributes:
        name: the value of the `label` option ("fine", "coarse").
        classes: class names in label order.
        tfds_feature: the tensorflow-datasets feature holding it.
    """

    name: str
    classes: tuple
    tfds_feature: str = "label"


@dataclasses.dataclass(frozen=True)
class Files:
    """A public dataset: tensorflow-datasets, else local files, else a download.

    Attributes:
        tfds_name: its tensorflow-datasets name.
        title: its name in messages ("MNIST", "CIFAR-10").
        host: the host tfds downloads it from, probed before a download
            (None: tfds cannot download it, e.g. ImageNet).
        local: the layouts searched under `data_dir`, in order
            (`readers.IdxFiles`, `readers.CifarPickles`,
            `image_tree.TreeTarball`, `image_tree.ClassTree`). A layout has
            `read(data_dir, split, expected)` -> `((images, labels,
            description) or None, places searched)`, where `expected` is
            the entry's `integrity.Expected`, which the layout checks what
            it read against, and `hint(title, classes)`, its part of the
            not-found message.
        image_size: (h, w) every image is resized to, as torchvision's
            `Resize` on PIL does (`readers.resize_like_pil`); images of that
            size are left as they are.
        splits: ((split, tfds split), ...) where tfds names a split
            otherwise (ImageNet's "test" is tfds's "validation").
        label_sets: the `LabelSet`s the `label` option chooses from, the
            first the default; () for datasets with one label.
        manual: files of tfds's manual download (ImageNet's tarballs), in
            `data_dir/downloads/manual/` or `data_dir`: tfds prepares the
            dataset from them into `data_dir`, offline.
        stream: decode images batch by batch (`streaming.StreamFeed`, for
            datasets too large for memory) instead of all at once.
    """

    tfds_name: str
    title: str
    host: str | None
    local: tuple = ()
    image_size: tuple = (32, 32)
    splits: tuple = ()
    label_sets: tuple = ()
    manual: tuple = ()
    stream: bool = False

    @property
    def options(self):
        return {"label": self.label_sets[0].name} if self.label_sets else {}

    def properties(self, entry, data_dir, options):
        return {"class_names": self.classes(entry, options)}

    def classes(self, entry, options):
        """Class names in label order: the label set's, the entry's, else tfds's (ImageNet's WordNet ids)."""
        label_set = self.label_set(options)
        if label_set:
            return label_set.classes
        if entry.classes:
            return entry.classes
        builder = tfds_download.builder(self.tfds_name, None)
        if builder is None:
            raise DataNotFoundError(f"{self.title}'s class names come from tensorflow-datasets, which is not installed")
        return tuple(builder.info.features["label"].names)

    def label_set(self, options):
        """The `LabelSet` that `options["label"]` names (None without label sets)."""
        if not self.label_sets:
            return None
        name = options.get("label", self.label_sets[0].name)
        for label_set in self.label_sets:
            if label_set.name == name:
                return label_set
        raise ValueError(f"label must be one of {[s.name for s in self.label_sets]}, got {name!r}")

    def read(self, entry, split, data_dir, download, seed, options):
        label_set = self.label_set(options)
        classes = self.classes(entry, options)
        feature = label_set.tfds_feature if label_set else "label"
        sizes = tuple((entry.split_sizes or {}).items())
        expected = Expected(self.title, classes, sizes, entry.balanced, label_set.name if label_set else None)
        tfds_split = dict(self.splits).get(split, split)
        searched = []
        builder = self._prepared(data_dir, searched)
        if builder is None and not self.stream:
            found = self._local(split, data_dir, expected, searched)
            if found is not None:
                images, labels, where = found
                return ArrayFeed(images, labels, len(classes), entry.mean, entry.std, where)
        if builder is None:
            builder = self._from_manual_files(data_dir, searched)
        if builder is None:
            builder = self._download(data_dir, download, searched)
        if builder is None:
            raise DataNotFoundError(self.not_found_message(searched, classes)) from None
        where = f"tfds data in {builder.data_dir}"
        if self.stream:
            return streaming.StreamFeed(
                builder, tfds_split, feature, len(classes), entry.mean, entry.std, self.image_size, where
            )
        images, labels = tfds_download.read_prepared(builder, tfds_split, self.image_size, feature)
        return ArrayFeed(images, labels, len(classes), entry.mean, entry.std, where)

    def _prepared(self, data_dir, searched):
        """tfds's builder when the dataset is prepared in data_dir or tfds's default dir."""
        for tfds_dir in ([str(data_dir)] if data_dir else []) + [None]:
            builder = tfds_download.builder(self.tfds_name, tfds_dir)
            if builder is not None and tfds_download.is_prepared(builder):
                return builder
            searched.append(
                f"tensorflow-datasets prepared data in {builder.data_dir if builder is not None else tfds_dir}"
            )
        return None

    def _local(self, split, data_dir, expected, searched):
        if data_dir is None:
            searched.append("local files: none, data_dir was not given")
            return None
        found, local_searched = self._read_local(split, Path(data_dir).expanduser().resolve(), expected)
        searched += local_searched
        return found

    def _from_manual_files(self, data_dir, searched):
        """tfds's builder, prepared from the manual download's files under data_dir (offline)."""
        if not self.manual:
            return None
        if data_dir is None:
            searched.append(f"tfds manual download ({', '.join(self.manual)}): data_dir was not given")
            return None
        root = Path(data_dir).expanduser()
        for folder in (root / "downloads" / "manual", root):
            if all((folder / name).is_file() for name in self.manual):
                return tfds_download.prepare_from_manual(self.tfds_name, str(root), str(folder))
            searched.append(f"tfds manual download {', '.join(self.manual)} in {folder}")
        return None

    def _download(self, data_dir, allow_download, searched):
        if self.host is None:
            searched.append("tensorflow-datasets download: not possible for this dataset")
        elif not allow_download:
            searched.append("tensorflow-datasets download: not tried, download=False")
        elif not tfds_download.host_reachable(self.host):
            searched.append(f"tensorflow-datasets download: {self.host} unreachable (offline?)")
        else:
            builder = tfds_download.builder(self.tfds_name, str(data_dir) if data_dir else None)
            try:
                builder.download_and_prepare()
                return builder
            except Exception as error:  # noqa: BLE001 - reported below, in one message
                searched.append(f"tensorflow-datasets download: failed ({type(error).__name__}: {error})")
        return None

    def not_found_message(self, searched, classes):
        layouts = [layout.hint(self.title, classes) for layout in self.local]
        if self.manual:
            layouts.append(f"tfds's manual download {', '.join(self.manual)} (in downloads/manual/ or directly)")
        layouts = layouts[0] if len(layouts) == 1 else ", ".join(layouts[:-1]) + ", or " + layouts[-1]
        places = "\n".join(f"  - {place}" for place in searched)
        fixes = [f"pointing data_dir at local files: a directory holding {layouts}."]
        if self.host:
            fixes.insert(0, "going online once, so tensorflow-datasets can download and prepare it "
                            "(into data_dir, or its default data dir);")
            fixes[1] = "or " + fixes[1]
        fixes = "\n".join(f"  - {fix}" for fix in fixes)
        return f"dataset {self.tfds_name!r} not found. Searched:\n{places}\nFix it by{' either' if self.host else ''}:\n{fixes}"

    def _read_local(self, split, data_dir, expected):
        """((images, labels, description) or None, places searched) under data_dir.

        What was found is kept per process (read-only arrays, the last 4
        splits), so that loading a split again, e.g. for every evaluation,
        costs nothing; a miss is not kept, so files put there later are found.
        """
        key = (self.tfds_name, split, data_dir, expected)
        if key in _LOCAL_CACHE:
            return _LOCAL_CACHE[key], []
        searched = []
        for layout in self.local:
            found, layout_searched = layout.read(data_dir, split, expected)
            searched += layout_searched
            if found is not None:
                images, labels, where = found
                found = (readers.resize_like_pil(images, self.image_size), labels, where)
                for array in found[:2]:
                    array.flags.writeable = False
                while len(_LOCAL_CACHE) >= 4:
                    _LOCAL_CACHE.pop(next(iter(_LOCAL_CACHE)))
                _LOCAL_CACHE[key] = found
                return found, searched
        return None, searched


_LOCAL_CACHE = {}  # (tfds name, split, data_dir, expected) -> (images, labels, description)


@dataclasses.dataclass(frozen=True)
class Bundled:
    """An array file in `nc_keras/assets` (`readers.read_asset`), resized to `image_size`."""

    filename: str
    image_size: tuple = (32, 32)
    options: ClassVar[dict] = {}

    def properties(self, entry, data_dir, options):
        return {"split_sizes": {split: len(readers.read_asset(self.filename, split)[1]) for split in readers.SPLITS}}

    def read(self, entry, split, data_dir, download, seed, options):
        images, labels = readers.read_asset(self.filename, split)
        images = readers.resize_like_pil(images, self.image_size)
        return ArrayFeed(images, labels, len(entry.classes), entry.mean, entry.std, "nc_keras/assets")


@dataclasses.dataclass(frozen=True)
class RandomPixels:
    """Uniform [0, 1) pixels (not normalized) with balanced random labels, from `seed`."""

    options: ClassVar[dict] = {
        "image_shape": (32, 32, 3),
        "num_classes": 10,
        "train_size": 50_000,
        "test_size": 10_000,
    }

    def properties(self, entry, data_dir, options):
        opts = self._options(options)
        return {
            "class_names": tuple(str(k) for k in range(opts["num_classes"])),
            "input_shape": opts["image_shape"],
            "split_sizes": {"train": opts["train_size"], "test": opts["test_size"]},
        }

    def read(self, entry, split, data_dir, download, seed, options):
        opts = self._options(options)
        labels = synthetic.balanced_random_labels(opts[f"{split}_size"], opts["num_classes"], seed, split)
        return synthetic.RandomPixelFeed(split, seed, opts["image_shape"], labels, opts["num_classes"])

    def _options(self, options):
        opts = {**self.options, **options}
        opts["image_shape"] = tuple(int(s) for s in opts["image_shape"])
        return opts


@dataclasses.dataclass(frozen=True)
class ClassFolders:
    """The user's class-folder tree at `data_dir` (`nc_keras.data.image_tree`).

    Options: `image_size=(h, w)` resizes (bilinear) images that differ in
    size; `channels`; `mean`/`std` per channel on the [0, 1] scale, by
    default the training split's own statistics.
    """

    options: ClassVar[dict] = {"image_size": None, "channels": 3, "mean": None, "std": None}

    def properties(self, entry, data_dir, options):
        opts = {**self.options, **options}
        root = image_tree.folder_root(data_dir)
        classes = image_tree.tree_classes(root / "train")
        sizes = {split: len(image_tree.tree_files(root / split, classes)[0]) for split in readers.SPLITS}
        if opts["image_size"]:
            height, width = opts["image_size"]
        else:
            first = image_tree.tree_files(root / "train", classes)[0][0]
            height, width = image_tree.encoded_image_size(first.read_bytes(), first)
        mean, std = self._stats(root, opts)
        return {
            "class_names": classes,
            "input_shape": (height, width, opts["channels"]),
            "split_sizes": sizes,
            "mean": mean,
            "std": std,
        }

    def read(self, entry, split, data_dir, download, seed, options):
        opts = {**self.options, **options}
        root = image_tree.folder_root(data_dir)
        images, labels, classes = image_tree.decoded_tree(root, split, opts["channels"], _size(opts))
        mean, std = self._stats(root, opts)
        return ArrayFeed(images, labels, len(classes), mean, std, str(root))

    def _stats(self, root, opts):
        return image_tree.folder_stats(root, opts["channels"], _size(opts), opts["mean"], opts["std"])


def _size(opts):
    return tuple(int(s) for s in opts["image_size"]) if opts["image_size"] else None


TFDS_PREFIX = "tfds:"
# tfds's own mirror of prepared datasets: the host probed before any tfds
# download of a `tfds:<name>` set (its files may come from elsewhere).
TFDS_HOST = "storage.googleapis.com"


@dataclasses.dataclass(frozen=True)
class TfdsImages:
    """Any tensorflow-datasets image classification set, `tfds:<name>`.

    Its classes, image shape and split sizes come from the builder's
    `DatasetInfo`: the supervised keys must be an `Image` feature and a
    `ClassLabel` (otherwise `ValueError`: not image classification). "test"
    is tfds's "test" split, else its "validation". It is found as `Files`
    finds a public dataset (prepared in `data_dir` or tfds's default dir,
    else a download when online).

    Options: `image_size=(s, s)` decodes per batch (`streaming`: resize
    and centre crop, random-resized-crop with `augment`), which sets of
    images of different sizes need; without it, images of one fixed size
    are decoded into memory as they are. `mean`/`std` per channel on the
    [0, 1] scale; by default the training split's own, computed once in one
    streamed pass and cached beside the data
    (`<tfds data dir>/nc_keras-normalization-<h>x<w>.json`).
    """

    tfds_name: str
    options: ClassVar[dict] = {"image_size": None, "mean": None, "std": None}

    def files(self):
        return Files(self.tfds_name, title=TFDS_PREFIX + self.tfds_name, host=TFDS_HOST)

    def keys(self):
        """(image feature, label feature, tfds builder): `ValueError` unless image classification."""
        import tensorflow_datasets as tfds

        builder = tfds_download.builder(self.tfds_name, None)
        if builder is None:
            raise ValueError(
                f"{TFDS_PREFIX}{self.tfds_name}: tensorflow-datasets has no dataset {self.tfds_name!r} "
                f"(see tfds.list_builders()), or is not installed"
            )
        info = builder.info
        supervised = info.supervised_keys or ()
        features = info.features
        if (
            len(supervised) != 2
            or not all(isinstance(key, str) and key in features for key in supervised)
            or not isinstance(features[supervised[0]], tfds.features.Image)
            or not isinstance(features[supervised[1]], tfds.features.ClassLabel)
        ):
            kinds = {key: type(feature).__name__ for key, feature in features.items()}
            raise ValueError(
                f"{TFDS_PREFIX}{self.tfds_name} is not an image classification dataset: nc_keras needs "
                f"supervised keys (Image, ClassLabel), and it has {info.supervised_keys!r} with "
                f"features {kinds}"
            )
        return supervised[0], supervised[1], builder

    def properties(self, entry, data_dir, options):
        opts = {**self.options, **options}
        image_key, label_key, builder = self.keys()
        names = tuple(builder.info.features[label_key].names)
        shape = tuple(builder.info.features[image_key].shape)
        size = _size(opts)
        if size is None and None in shape[:2]:
            raise ValueError(
                f"{TFDS_PREFIX}{self.tfds_name} holds images of different sizes {shape}: pass "
                f"image_size=(s, s) (e.g. (224, 224)) to resize and crop them"
            )
        if size is not None and size[0] != size[1]:
            raise ValueError(f"image_size must be square for {TFDS_PREFIX}{self.tfds_name} (a centre crop); got {size}")
        prepared = self._prepared(data_dir, download=True)
        sizes = {
            split: streaming.StreamFeed(prepared, self._split_name(prepared, split), label_key, len(names),
                                        None, None, (1, 1), "", image_feature=image_key).size
            for split in readers.SPLITS
        }  # fmt: skip
        mean, std = self._stats(entry, prepared, opts)
        return {
            "class_names": names,
            "input_shape": (*(size or shape[:2]), 3 if size else shape[2]),
            "split_sizes": sizes,
            "mean": mean,
            "std": std,
        }

    def read(self, entry, split, data_dir, download, seed, options):
        opts = {**self.options, **options}
        image_key, label_key, _ = self.keys()
        builder = self._prepared(data_dir, download)
        mean, std = self._stats(entry, builder, opts)
        where = f"tfds data in {builder.data_dir}"
        tfds_split = self._split_name(builder, split)
        size = _size(opts)
        if size:
            return streaming.StreamFeed(builder, tfds_split, label_key, len(self._names(label_key)), mean, std,
                                        size, where, image_feature=image_key)
        images, labels = tfds_download.read_prepared(builder, tfds_split, None, label_key, image_key)
        return ArrayFeed(images, labels, len(self._names(label_key)), mean, std, where)

    def _names(self, label_key):
        return self.keys()[2].info.features[label_key].names

    def _prepared(self, data_dir, download):
        files, searched = self.files(), []
        builder = files._prepared(data_dir, searched) or files._download(data_dir, download, searched)
        if builder is None:
            places = "\n".join(f"  - {place}" for place in searched)
            raise DataNotFoundError(
                f"dataset {TFDS_PREFIX}{self.tfds_name} not found. Searched:\n{places}\nFix it by going "
                f"online once, so tensorflow-datasets can download and prepare it (into data_dir, or "
                f"its default data dir), or by pointing data_dir at a tfds data dir that holds it."
            )
        return builder

    def _split_name(self, builder, split):
        names = set(builder.info.splits)
        if split in names or not names:  # no split list: under tfds.testing.mock_data
            return split
        if split == "test" and "validation" in names:
            return "validation"
        raise ValueError(f"{TFDS_PREFIX}{self.tfds_name} has no {split!r} split; it has {sorted(names)}")

    def _stats(self, entry, builder, opts):
        """(mean, std) per channel: given, or the training split's, cached beside the data."""
        if opts["mean"] is not None and opts["std"] is not None:
            return tuple(float(m) for m in opts["mean"]), tuple(float(s) for s in opts["std"])
        image_key, label_key, _ = self.keys()
        size = _size(opts)
        cache = Path(builder.data_dir) / f"nc_keras-normalization-{'x'.join(map(str, size or ('native',)))}.json"
        if cache.is_file():
            try:
                stored = json.loads(cache.read_text())
                return tuple(stored["mean"]), tuple(stored["std"])
            except (ValueError, KeyError, TypeError):  # a damaged cache: computed again
                pass
        train = self._split_name(builder, "train")
        if size:
            feed = streaming.StreamFeed(builder, train, label_key, 1, None, None, size, "", image_feature=image_key)
            batches = feed.decoded(train=False)
        else:
            import tensorflow_datasets as tfds

            examples = builder.as_dataset(split=train, shuffle_files=False).map(lambda ex: ex[image_key])
            batches = tfds.as_numpy(examples.batch(1024))
        total, total_sq, count = 0.0, 0.0, 0
        for batch in batches:  # float64 sums: 1.3e9 ImageNet pixels stay exact enough
            pixels = np.asarray(batch, np.float64).reshape(-1, np.shape(batch)[-1]) / 255.0
            total, total_sq, count = total + pixels.sum(0), total_sq + (pixels**2).sum(0), count + len(pixels)
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        stats = {"mean": [float(m) for m in mean], "std": [float(max(s, 1e-6)) for s in std],
                 "source": f"the {train} split of {TFDS_PREFIX}{self.tfds_name}, {count // mean.size} pixels"}
        if cache.parent.is_dir():
            try:
                write_json(cache, stats)
            except OSError:  # a read-only data dir: computed again next time
                pass
        return tuple(stats["mean"]), tuple(stats["std"])


def tfds_entry(name, make_entry):
    """The catalogue entry of `tfds:<name>`, made by `make_entry(name, help, source)`."""
    tfds_name = name[len(TFDS_PREFIX):]
    if not tfds_name:
        raise ValueError(f"{name!r}: name a tensorflow-datasets dataset after {TFDS_PREFIX!r}, e.g. tfds:beans")
    return make_entry(name, f"tensorflow-datasets' {tfds_name}.", TfdsImages(tfds_name))
