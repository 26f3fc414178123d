"""File formats holding whole datasets: IDX files, CIFAR pickles, bundled arrays.

Each reader returns uint8 images (N, H, W, C) and int64 labels in the order
the files store them. `IdxFiles` and `CifarPickles` are the local layouts a
catalogue entry's `Files` source searches under `data_dir` (the class-folder
layouts are in `nc_keras.data.image_tree`); a layout's `read` returns the
arrays, or None plus the places it looked in. Every file is read to its end
and what it holds is checked against the entry (`integrity.Expected`), so a
cut or damaged file raises `integrity.CorruptDataError` naming it.

`resize_like_pil` is the MNIST preprocessing of the paper's reference code
(torchvision's `Resize(32)` on a PIL image).
"""

import dataclasses
import functools
import gzip
import importlib.resources
from pathlib import Path

import numpy as np

from nc_keras.data import safe_pickle
from nc_keras.data.integrity import REFETCH, CorruptDataError, reading

SPLITS = ("train", "test")


class DataNotFoundError(FileNotFoundError):
    """No source holds the requested dataset; the message says how to fix it."""


def read_idx(path):
    """Read an IDX file (gzipped or raw): big-endian header, uint8 payload.

    `CorruptDataError` when the file is cut short (the payload is smaller
    than the header's shape, or the gzip stream ends early) or damaged.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with reading(path), opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise CorruptDataError(f"{path} is not an IDX file of unsigned bytes: {REFETCH}")
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise CorruptDataError(f"{path} is truncated inside its header: {REFETCH}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(data, np.uint8, offset=header_size)
    if payload.size != int(np.prod(shape)):
        problem = "truncated" if payload.size < int(np.prod(shape)) else "corrupt"
        raise CorruptDataError(
            f"{path} is {problem}: header says {shape}, payload has {payload.size} bytes; {REFETCH}"
        )
    return payload.reshape(shape)


def find_idx(folder, stem):
    """The IDX file `stem` in `folder`, gzipped or raw, `-idx` or `.idx`; or None."""
    dotted = stem.replace("-idx", ".idx")
    for candidate in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


@dataclasses.dataclass(frozen=True)
class IdxFiles:
    """Four IDX files, images and labels per split (MNIST's own format).

    Searched in each of `folders` (relative to `data_dir`; `""` is `data_dir`
    itself), each file gzipped or raw.
    """

    folders: tuple = ("",)
    stems: tuple = (
        ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    )

    def read(self, data_dir, split, expected):
        """((images, labels, description) or None, places searched)."""
        image_stem, label_stem = next(stems for name, *stems in self.stems if name == split)
        searched = []
        for folder in (data_dir / sub for sub in self.folders):
            images_path, labels_path = find_idx(folder, image_stem), find_idx(folder, label_stem)
            if images_path and labels_path:
                images, labels = read_idx(images_path), read_idx(labels_path).astype(np.int64)
                if len(images) != len(labels):
                    raise CorruptDataError(
                        f"{folder}: {len(images)} images but {len(labels)} labels for {split} "
                        f"({images_path.name}, {labels_path.name}): one of them is truncated or "
                        f"from another split; {REFETCH}"
                    )
                expected.check(split, labels, labels_path)
                return (images[..., None], labels, f"IDX files in {folder}"), searched
            searched.append(f"{expected.title} IDX files in {folder}")
        return None, searched

    def hint(self, title, classes):
        names = ", ".join(stem for _, *stems in self.stems for stem in stems)
        return f"the four {title} IDX files, gzipped or raw: {names} ({folders_phrase(self.folders)})"


@dataclasses.dataclass(frozen=True)
class CifarPickles:
    """The python pickles of the CIFAR website (torchvision's layout).

    CIFAR-10: `cifar-10-batches-py/data_batch_1..5` and `test_batch`, labels
    under `b"labels"`; CIFAR-100: `cifar-100-python/train` and `test`, labels
    under `b"fine_labels"` and `b"coarse_labels"`. `label_keys` maps the
    entry's `label` option (`Expected.label`; None: the only one) to the key.
    Read with `safe_pickle.load_batch`, which runs no code from the files.
    """

    folder: str = "cifar-10-batches-py"
    files: tuple = (("train", tuple(f"data_batch_{i}" for i in range(1, 6))), ("test", ("test_batch",)))
    label_keys: tuple = ((None, b"labels"),)

    def read(self, data_dir, split, expected):
        folder = data_dir / self.folder
        names = dict(self.files)
        if not all((folder / name).is_file() for name in names["test"]):
            return None, [f"{expected.title} python pickles in {folder}"]
        label_key = dict(self.label_keys)[expected.label]
        images, labels = read_cifar_pickles([folder / name for name in names[split]], label_key)
        expected.check(split, labels, folder)
        return (images, labels, f"pickles in {folder}"), []

    def hint(self, title, classes):
        return f"torchvision's {self.folder}/"


def read_cifar_pickles(paths, label_key=b"labels"):
    """(images, labels) of CIFAR batch files, in order; labels under `label_key`."""
    images, labels = [], []
    for path in paths:
        batch = safe_pickle.load_batch(path)
        try:
            # Rows are 3072 bytes: the red plane, then green, then blue (CHW).
            rows = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            row_labels = np.asarray(batch[label_key], np.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptDataError(f"{path} is not a CIFAR batch ({error!r}): {REFETCH}") from error
        if len(rows) != len(row_labels):
            raise CorruptDataError(f"{path} holds {len(rows)} images but {len(row_labels)} labels: {REFETCH}")
        images.append(rows)
        labels.append(row_labels)
    return np.concatenate(images), np.concatenate(labels)


@functools.lru_cache(maxsize=2)
def read_asset(filename, split):
    """(images uint8 NHWC, labels) of a split of `nc_keras/assets/<filename>`.

    The file holds `x_<split>`, (N, H, W) or (N, H, W, C) uint8 images, and
    `y_<split>` labels (see `nc_keras/assets/README.md`).
    """
    asset = importlib.resources.files("nc_keras") / "assets" / filename
    with importlib.resources.as_file(asset) as path, np.load(path) as arrays:
        images = arrays[f"x_{split}"]
        return (images[..., None] if images.ndim == 3 else images), arrays[f"y_{split}"].astype(np.int64)


def resize_like_pil(images, size):
    """uint8 NHWC -> uint8 at `size` (h, w), as torchvision's Resize on PIL does.

    `transforms.Resize(32)` on a 28x28 PIL image upsamples bilinearly (pixel
    centres at half-integers) and rounds back to uint8; `tf.image.resize(...,
    "bilinear")` (same pixel centres, no antialiasing, which only matters
    when shrinking) followed by rounding reproduces it to within one grey
    level. Images already of `size` come back unchanged.
    """
    import tensorflow as tf

    height, width = size
    if images.shape[1:3] == (height, width):
        return images
    out = np.empty((len(images), height, width, images.shape[-1]), np.uint8)
    for start in range(0, len(images), 10_000):  # bounds the float32 temporary
        chunk = tf.image.resize(images[start : start + 10_000], (height, width), method="bilinear")
        out[start : start + 10_000] = np.clip(np.round(chunk.numpy()), 0, 255).astype(np.uint8)
    return out


def folders_phrase(folders):
    """'directly, in mnist/ or in MNIST/raw/' for ("", "mnist", "MNIST/raw")."""
    places = ["directly" if not sub else f"in {sub}/" for sub in folders]
    return places[0] if len(places) == 1 else ", ".join(places[:-1]) + " or " + places[-1]
