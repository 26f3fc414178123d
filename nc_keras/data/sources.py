"""Where a catalogue entry's examples come from: the four kinds of source.

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

A source says which options its datasets take (`options`, with their
defaults), what it knows only at run time (`properties`, merged into
`DatasetInfo`), and opens a split as a feed (`read`): the labels plus the
functions that gather and normalize a batch of images.
"""

import dataclasses
from pathlib import Path
from typing import ClassVar


from nc_keras.data import download as tfds_download
from nc_keras.data import image_tree, readers, synthetic
from nc_keras.data.integrity import Expected
from nc_keras.data.readers import DataNotFoundError


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
class Files:
    """A public dataset: tensorflow-datasets, else local files, else a download.

    Attributes:
        tfds_name: its tensorflow-datasets name.
        title: its name in messages ("MNIST", "CIFAR-10").
        host: the host tfds downloads it from, probed before a download.
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
    """

    tfds_name: str
    title: str
    host: str
    local: tuple
    image_size: tuple = (32, 32)
    options: ClassVar[dict] = {}

    def properties(self, entry, data_dir, options):
        return {}

    def read(self, entry, split, data_dir, download, seed, options):
        sizes = tuple((entry.split_sizes or {}).items())
        expected = Expected(self.title, entry.classes, sizes, entry.balanced)
        images, labels, where = self.arrays(split, data_dir, download, expected)
        return ArrayFeed(images, labels, len(entry.classes), entry.mean, entry.std, where)

    def arrays(self, split, data_dir, allow_download, expected):
        """(images uint8 NHWC, labels, description) from the first source that has them."""
        searched = []
        for tfds_dir in ([str(data_dir)] if data_dir else []) + [None]:
            builder = tfds_download.builder(self.tfds_name, tfds_dir)
            if builder is not None and tfds_download.is_prepared(builder):
                images, labels = tfds_download.read_prepared(builder, split, self.image_size)
                return images, labels, f"tfds data in {builder.data_dir}"
            searched.append(
                f"tensorflow-datasets prepared data in {builder.data_dir if builder is not None else tfds_dir}"
            )

        if data_dir is not None:
            found, local_searched = self._read_local(split, Path(data_dir).expanduser().resolve(), expected)
            if found is not None:
                return found
            searched += local_searched
        else:
            searched.append("local files: none, data_dir was not given")

        if not allow_download:
            searched.append("tensorflow-datasets download: not tried, download=False")
        elif not tfds_download.host_reachable(self.host):
            searched.append(f"tensorflow-datasets download: {self.host} unreachable (offline?)")
        else:
            builder = tfds_download.builder(self.tfds_name, str(data_dir) if data_dir else None)
            try:
                builder.download_and_prepare()
                images, labels = tfds_download.read_prepared(builder, split, self.image_size)
                return images, labels, f"tfds data in {builder.data_dir}"
            except Exception as error:  # noqa: BLE001 - reported below, in one message
                searched.append(f"tensorflow-datasets download: failed ({type(error).__name__}: {error})")
        raise DataNotFoundError(self.not_found_message(searched, expected.classes)) from None

    def not_found_message(self, searched, classes):
        layouts = [layout.hint(self.title, classes) for layout in self.local]
        layouts = layouts[0] if len(layouts) == 1 else ", ".join(layouts[:-1]) + ", or " + layouts[-1]
        places = "\n".join(f"  - {place}" for place in searched)
        return (
            f"dataset {self.tfds_name!r} not found. Searched:\n{places}\n"
            f"Fix it by either:\n"
            f"  - going online once, so tensorflow-datasets can download and prepare "
            f"it (into data_dir, or its default data dir);\n"
            f"  - or pointing data_dir at local files: a directory holding {layouts}."
        )

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
