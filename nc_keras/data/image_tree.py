"""Class-folder image trees and tarballs of them, decoded once and cached on disk.

A tree is `train/<class>/*.png|jpg|jpeg|bmp|gif` and `test/<class>/...`;
classes are the sorted folder names of `train/` (label k is the k-th), files
are taken in sorted name order. Hidden folders and files (names starting
with ".", e.g. Jupyter's `.ipynb_checkpoints` or macOS's `._*`) are not
part of the tree: as a class they would shift every label. An empty class
folder is refused. A tarball holds such a tree (members
`[top/]train/<class>/<file>`) and is read straight from the archive, never
unpacked: reading 60,000 small members takes seconds where writing them out
as files takes far longer.

A tarball is read to its end (`tarball_images`), every image must decode
(a corrupt one is named), and a public dataset's tree or tarball must hold
its catalogue entry's classes and counts (`integrity.Expected`); only then
is the decode cached.

Decoding images is the slow part (CIFAR-10 JPEG: about 15 s on 2 cores), so
the decoded uint8 arrays are cached as uncompressed `.npz` files in
`decoded/` under `cache_dir()` (CIFAR-10: 185 MB, one file for a tarball,
one per split for a tree). A tree's entry is keyed by its path and its
files' names, sizes and modification times, a tarball's by its path, size
and modification time, so changed data is decoded again. Delete the folder
at any time to reclaim the space.
"""

import contextlib
import dataclasses
import hashlib
import os
import tarfile
import warnings
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from nc_keras.data.integrity import REFETCH, CorruptDataError, reading
from nc_keras.data.readers import SPLITS, DataNotFoundError, folders_phrase
from nc_keras.io_utils import save_npz

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})


def cache_dir():
    """The folder holding decoded trees and tarballs (in its `decoded/`).

    `$NC_KERAS_CACHE`, else `$XDG_CACHE_HOME/nc_keras`, else
    `~/.cache/nc_keras`.
    """
    if os.environ.get("NC_KERAS_CACHE"):
        return Path(os.environ["NC_KERAS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nc_keras"


def read_cache(path, keys):
    """{key: array} of the decode cache entry `path`, or None to decode again.

    None when there is no entry, and when the entry does not read whole (a
    copy cut short, a disk that filled up, a file that is not an `.npz` of
    `keys`): then one warning names it and it is removed, so the caller's
    decode writes it anew instead of every later load failing on it.

    Raises:
        ValueError: the cache folder's path runs through a file (a
            mistyped `$NC_KERAS_CACHE`): said before decoding, not after.
    """
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(
            f"the decode cache folder {path.parent} cannot be created: {folder} is a file; "
            "point $NC_KERAS_CACHE (or $XDG_CACHE_HOME) at a folder")
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            return {key: npz[key] for key in keys}
    except Exception as error:  # noqa: BLE001 - zipfile, zlib, numpy and OS errors alike
        warnings.warn(
            f"decode cache entry {path} is corrupt ({type(error).__name__}: {error}); "
            "discarded; it is rebuilt from the source.",
            stacklevel=3,
        )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None


def write_cache(path, **arrays):
    """Saves a decode cache entry (atomically); a full disk only warns."""
    try:
        save_npz(path, **arrays)
    except OSError as error:  # no space left, a read-only cache: the data is still good
        warnings.warn(f"could not write the decode cache entry {path} ({error}); the data is "
                      "used without it and decoded again by the next process", stacklevel=3)


# --------------------------------------------------------------------------
# Layouts a catalogue entry's `Files` source searches under data_dir


@dataclasses.dataclass(frozen=True)
class ClassTree:
    """A class-folder tree in one of `folders` (relative to data_dir).

    Its class folders must be the entry's classes; images are decoded with
    `channels` channels.
    """

    folders: tuple = ("",)
    channels: int = 3

    def read(self, data_dir, split, expected):
        """((images, labels, description) or None, places searched)."""
        searched = []
        for tree in (data_dir / sub for sub in self.folders):
            if (tree / "train").is_dir() and (tree / "test").is_dir():
                check_classes(tree_classes(tree / "train"), expected.classes, tree)
                images, labels, _ = decoded_tree(tree, split, self.channels, None, expected)
                return (images, labels, f"image tree {tree}"), searched
            searched.append(f"class-folder tree {tree}/train, {tree}/test")
        return None, searched

    def hint(self, title, classes):
        return (
            f"a class-folder tree train/<class>/*.jpg|png and test/<class>/*.jpg|png with the "
            f"{len(classes)} classes {classes[0]} ... {classes[-1]} ({folders_phrase(self.folders)})"
        )


@dataclasses.dataclass(frozen=True)
class TreeTarball:
    """A tarball `data_dir/<name>` of a class-folder tree, read without unpacking."""

    name: str
    channels: int = 3

    def read(self, data_dir, split, expected):
        tarball = data_dir / self.name
        if not tarball.is_file():
            return None, [f"{expected.title} tarball {tarball}"]
        splits = decoded_tarball(tarball, self.channels, expected)
        return (*splits[split], f"tarball {tarball}"), []

    def hint(self, title, classes):
        return f"a tarball named {self.name} of a class-folder tree"


def check_classes(found, expected, where):
    # Sorted folder names give the canonical label order (CIFAR-10's class
    # names happen to be alphabetical, MNIST's are digits).
    if tuple(found) != tuple(expected):
        raise ValueError(f"{where}: class folders {list(found)}, expected {list(expected)}")


# --------------------------------------------------------------------------
# The user's own tree ("folder")


def folder_root(data_dir):
    """`data_dir` as a Path, checked to hold train/ and test/."""
    if data_dir is None:
        raise ValueError('load("folder") needs data_dir: a folder with train/<class>/ and test/<class>/')
    root = Path(data_dir).expanduser()
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataNotFoundError(
            f"dataset 'folder' not found: {root} must hold train/<class>/*.png|jpg and "
            f"test/<class>/*.png|jpg (one sub-folder per class, the same classes in both)"
        )
    return root


def folder_stats(root, channels, image_size, mean=None, std=None):
    """Per-channel (mean, std) on the [0, 1] scale: given, or of the train split."""
    if mean is not None and std is not None:
        return tuple(np.broadcast_to(mean, channels)), tuple(np.broadcast_to(std, channels))
    images, _, _ = decoded_tree(root, "train", channels, image_size)
    pixels = images.reshape(-1, channels).astype(np.float64) / 255.0
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-6)) for s in std)


# --------------------------------------------------------------------------
# Listing and decoding


def visible(name):
    """False for hidden names ("."-prefixed): tools' folders and files, not data."""
    return not name.startswith(".")


def is_image(name):
    return visible(name) and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def tree_classes(split_dir):
    """Sorted class folder names of `split_dir`, hidden folders left out."""
    classes = tuple(sorted(p.name for p in split_dir.iterdir() if p.is_dir() and visible(p.name)))
    if not classes:
        raise DataNotFoundError(f"{split_dir} has no class folders")
    return classes


def tree_files(split_dir, classes):
    """Image paths and labels, classes in the given order, files sorted by name.

    A class may lack a folder (in test/), but a folder must hold images.
    """
    found = tree_classes(split_dir)
    if not set(found) <= set(classes):
        raise ValueError(f"{split_dir} has class folders {sorted(set(found) - set(classes))} not in train/")
    paths, labels = [], []
    for label, class_name in enumerate(classes):
        folder = split_dir / class_name
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p.name))
        if not files:
            raise ValueError(
                f"class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}; hidden "
                f"files are ignored): add its images, or remove it if it is not a class"
            )
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DataNotFoundError(f"{split_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths, np.asarray(labels, np.int64)


@lru_cache(maxsize=4)
def decoded_tree(root, split, channels, image_size, expected=None):
    """(images uint8 NHWC, labels, classes) of root/split, cached on disk.

    `image_size` (h, w) resizes every image (bilinear); None keeps their
    size, which must then be the same for all. `expected`
    (`integrity.Expected`) checks a public dataset's counts, before decoding.
    """
    classes = tree_classes(root / "train")
    paths, labels = tree_files(root / split, classes)
    if expected is not None:
        expected.check(split, labels, root / split)
    fingerprint = hashlib.sha256(repr((str(root.resolve()), split, channels, image_size)).encode())
    for path in paths:
        stat = path.stat()
        fingerprint.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    cached = cache_dir() / "decoded" / f"{root.name}-{split}-{fingerprint.hexdigest()[:16]}.npz"
    arrays = read_cache(cached, ("images", "labels"))
    if arrays is not None:
        return arrays["images"], arrays["labels"], classes
    encoded = [path.read_bytes() for path in paths]
    images = decode_images(encoded, [str(path) for path in paths], channels, image_size)
    write_cache(cached, images=images, labels=labels)
    return images, labels, classes


@lru_cache(maxsize=2)
def decoded_tarball(tarball, channels, expected):
    """{split: (images, labels)} of a tarball of a public dataset's class-folder tree.

    One pass over the archive, read to its end; its classes and counts are
    checked against `expected` (`integrity.Expected`) and every image must
    decode before the result is cached on disk, keyed by the tarball's path,
    size and modification time. A cache hit is checked again (labels only).
    """
    stat = tarball.stat()
    stamp = repr((str(tarball.resolve()), stat.st_size, stat.st_mtime_ns, channels))
    name = tarball.name.split(".tar")[0]
    cached = cache_dir() / "decoded" / f"{name}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.npz"
    keys = ("classes", *(f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")))
    arrays = read_cache(cached, keys)
    if arrays is not None:
        splits = {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in SPLITS}
        classes = tuple(arrays["classes"].tolist())
        _check_tarball(tarball, classes, {s: labels for s, (_, labels) in splits.items()}, expected)
        return splits
    members = tarball_images(tarball)
    classes = tuple(sorted({class_name for class_name, _, _ in members["train"]}))
    if not classes:
        raise DataNotFoundError(f"{tarball} holds no train/<class>/<image> members")
    labels = {}
    for split, found in members.items():
        if not found or not {class_name for class_name, _, _ in found} <= set(classes):
            raise ValueError(f"{tarball}: {split}/ is empty or has classes not in train/")
        found.sort(key=lambda item: (classes.index(item[0]), PurePosixPath(item[1]).name))
        labels[split] = np.asarray([classes.index(class_name) for class_name, _, _ in found], np.int64)
    _check_tarball(tarball, classes, labels, expected)
    splits = {}
    for split, found in members.items():
        names = [f"member {member} of {tarball}" for _, member, _ in found]
        splits[split] = (decode_images([data for _, _, data in found], names, channels, None), labels[split])
    arrays = {f"{s}_{kind}": splits[s][i] for s in SPLITS for i, kind in enumerate(("images", "labels"))}
    write_cache(cached, classes=np.asarray(classes), **arrays)
    return splits


def _check_tarball(tarball, classes, labels, expected):
    check_classes(classes, expected.classes, tarball)
    for split, split_labels in labels.items():
        expected.check(split, split_labels, tarball)


def tarball_images(tarball):
    """{split: [(class, member name, bytes)]}: the images of a tree tarball, read to its end.

    tarfile's stream mode ("r|*") takes a cut or damaged header for the end
    of the archive and never checks gzip's trailer: a tarball cut at 99.5%
    loaded as a smaller dataset. So the archive is opened through gzip's,
    bz2's or lzma's own reader ("r:*"), which raises at a cut and checks the
    trailer's checksum when read to the end, and what follows the last
    member must be tar's end-of-archive blocks (zeros, at least two). A
    member named by an absolute path or through ".." is refused.
    `CorruptDataError` names the tarball, and the member when a member's
    data is cut.
    """
    members = {split: [] for split in SPLITS}
    with reading(tarball), tarfile.open(tarball, "r:*") as archive:
        for member in archive:
            parts = PurePosixPath(member.name).parts
            if parts and (parts[0] == "/" or ".." in parts):
                # Not data of this tree: a crafted or broken archive.
                raise CorruptDataError(
                    f"member {member.name} of {tarball} lies outside the archive's folder (an "
                    f"absolute path or '..'); refusing the archive: {REFETCH}")
            if (
                member.isfile()
                and len(parts) >= 3
                and parts[-3] in members
                and visible(parts[-2])
                and is_image(parts[-1])
            ):
                with reading(tarball, member.name):
                    data = archive.extractfile(member).read()
                members[parts[-3]].append((parts[-2], member.name, data))
        _read_end_of_archive(archive, tarball)
    return members


def _read_end_of_archive(archive, tarball):
    # After the loop, `archive.offset` is where the header that ended it
    # starts: tar's first zero block, or a cut or damaged header.
    stream = archive.fileobj
    stream.seek(archive.offset)
    zeros = 0
    while chunk := stream.read(1 << 16):  # to the end: gzip checks its trailer here
        if chunk.count(0) != len(chunk):
            raise CorruptDataError(
                f"{tarball} is corrupt: a damaged member header at byte {archive.offset:,} of the "
                f"unpacked archive ends its listing early; {REFETCH}"
            )
        zeros += len(chunk)
    if zeros < 2 * tarfile.BLOCKSIZE:
        raise CorruptDataError(
            f"{tarball} is truncated: it ends at byte {archive.offset + zeros:,} of the unpacked "
            f"archive without tar's end-of-archive marker; {REFETCH}"
        )


def encoded_image_size(encoded, name):
    """(height, width) of one encoded image (bytes); `CorruptDataError` naming `name`."""
    import tensorflow as tf

    try:
        shape = tf.io.decode_image(encoded, expand_animations=False).shape
    except tf.errors.InvalidArgumentError as error:
        raise _corrupt_image(name, error) from None
    return int(shape[0]), int(shape[1])


def decode_images(encoded, names, channels, size):
    """Decode PNG/JPEG/BMP/GIF byte strings into one uint8 NHWC array.

    `size` (h, w) resizes each image (bilinear, rounded back to uint8); None
    requires every image to have the first one's size. An image that does
    not decode (`CorruptDataError`) or has another size (`ValueError`) is
    named by its entry of `names`.
    """
    import tensorflow as tf

    height, width = size or encoded_image_size(encoded[0], names[0])

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        if size:
            image = tf.image.resize(image, (height, width), method="bilinear")
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        # Fails (caught below) when an image has another size than the first.
        return tf.ensure_shape(image, (height, width, channels))

    dataset = tf.data.Dataset.from_tensor_slices(encoded)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
    try:
        return np.concatenate([batch.numpy() for batch in dataset])
    except tf.errors.InvalidArgumentError as error:
        batch_error = error
    # The batch's error names no image: find the first that fails, then why.
    bad = _first_failing(encoded, decode)
    if bad is None:  # only failed in the batch: nothing better to say
        raise batch_error
    try:
        shape = tuple(tf.io.decode_image(encoded[bad], channels=channels, expand_animations=False).shape)
    except tf.errors.InvalidArgumentError as error:
        raise _corrupt_image(names[bad], error) from None
    raise ValueError(
        f"{names[bad]} is {shape[0]}x{shape[1]} but {names[0]}, the first image, is "
        f"{height}x{width}; pass image_size=(height, width) to resize them"
    )


def _first_failing(encoded, decode):
    """Index of the first encoded image that `decode` fails on (None: none fails)."""
    import tensorflow as tf

    indexed = tf.data.Dataset.from_tensor_slices((np.arange(len(encoded)), encoded))
    # Returning the image keeps the decode from being pruned from the map.
    decoded = indexed.map(lambda i, data: (i, decode(data)), num_parallel_calls=tf.data.AUTOTUNE)
    passed = {int(i) for batch, _ in decoded.ignore_errors().batch(1024) for i in batch.numpy()}
    return next((i for i in range(len(encoded)) if i not in passed), None)


def _corrupt_image(name, error):
    reason = error.message.splitlines()[0] if error.message else type(error).__name__
    return CorruptDataError(
        f"{name} is corrupt: it does not decode as PNG, JPEG, BMP or GIF ({reason}); "
        f"replace it (or the archive holding it) with a good copy"
    )
