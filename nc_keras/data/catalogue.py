"""The datasets `nc_keras.data.load` knows: one `Dataset` entry each.

Adding a dataset is adding one entry to `DATASETS` below: its name, a line
of help, its classes, image shape, split sizes and normalization, and its
source (`nc_keras.data.sources`), which also names the options it takes.
`NAMES`, `info`, the option checks, `describe()` (the `--dataset` help)
and the dataset list in `load`'s docstring all come from these entries.

Normalization follows the paper's setup (Sec. 4, "Setup of Network
Architectures, Dataset, and Training": images normalized channel-wise by
their mean and standard deviation) with the `transforms.Normalize`
constants of its reference code. The CIFAR-10 "std" values are not the
dataset's pixel std (about 0.247, 0.243, 0.261) but the widely copied mean
of per-image stds; the paper used them.
"""

import dataclasses

from nc_keras.data.image_tree import ClassTree, TreeTarball
from nc_keras.data.readers import SPLITS, CifarPickles, IdxFiles
from nc_keras.data.sources import Bundled, ClassFolders, Files, RandomPixels

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
MNIST_MEAN = (0.1307,) * 3  # grey is copied to 3 channels
MNIST_STD = (0.3081,) * 3


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


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One entry of the catalogue.

    Attributes:
        name: what `load` and `info` take.
        help: one line for `describe()`, ending with where the paper uses it.
        source: where the examples come from (`Files`, `Bundled`,
            `RandomPixels`, `ClassFolders`); it names the accepted options
            and gives what only it knows (e.g. a folder's classes).
        classes: class names in label order (None: the source says).
        input_shape: one preprocessed image, HWC (None: the source says).
        split_sizes: examples per split (None: the source says); local files
            of a public dataset must hold exactly these.
        mean, std: per-channel normalization on the [0, 1] scale; None: not
            normalized, or the source says.
        random_labels: replace every label by a seeded, balanced random
            assignment (`synthetic.balanced_random_labels`; Sec. 4.2).
        balanced: every class holds split size / number of classes examples.
            With `split_sizes`, local files are checked against it
            (`nc_keras.data.integrity`), so a cut file is refused.
    """

    name: str
    help: str
    source: object
    classes: tuple | None = None
    input_shape: tuple | None = (32, 32, 3)
    split_sizes: dict | None = None
    mean: tuple | None = None
    std: tuple | None = None
    random_labels: bool = False
    balanced: bool = False

    @property
    def options(self):
        """{option: default} that `load` and `info` accept for this dataset."""
        return self.source.options

    def info(self, data_dir=None, **options):
        """`DatasetInfo`: the entry's fields, completed by its source."""
        check_options(self, options)
        fields = {
            "class_names": self.classes,
            "input_shape": self.input_shape,
            "split_sizes": dict(self.split_sizes) if self.split_sizes else None,
            "mean": self.mean,
            "std": self.std,
        }
        fields.update(self.source.properties(self, data_dir, options))
        return DatasetInfo(self.name, len(fields["class_names"]), **fields)


_CIFAR10_FILES = Files(
    "cifar10",
    title="CIFAR-10",
    host="www.cs.toronto.edu",
    local=(
        CifarPickles("cifar-10-batches-py"),
        TreeTarball("cifar10-jpg.tar.gz"),
        ClassTree(("", "cifar10", "cifar10-jpg")),
    ),
)
_CIFAR10_SIZES = {"train": 50_000, "test": 10_000}

DATASETS = {
    entry.name: entry
    for entry in (
        Dataset(
            "cifar10",
            "CIFAR-10 (Sec. 4.1, Fig. 3).",
            _CIFAR10_FILES,
            CIFAR10_CLASSES,
            split_sizes=_CIFAR10_SIZES,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
            balanced=True,
        ),
        Dataset(
            "mnist",
            "MNIST, resized 28x28 -> 32x32, grey copied to 3 channels (Sec. 4.1, appendix).",
            Files(
                "mnist",
                title="MNIST",
                host="storage.googleapis.com",
                local=(IdxFiles(("", "mnist", "MNIST/raw")), ClassTree(("", "mnist"), channels=1)),
            ),
            MNIST_CLASSES,
            split_sizes={"train": 60_000, "test": 10_000},
            mean=MNIST_MEAN,
            std=MNIST_STD,
        ),
        Dataset(
            "cifar10_random",
            "CIFAR-10 images with every label replaced by a fixed random, balanced "
            "assignment (5,000 per class in train, 1,000 in test) (Sec. 4.2, Fig. 4).",
            _CIFAR10_FILES,
            CIFAR10_CLASSES,
            split_sizes=_CIFAR10_SIZES,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
            random_labels=True,
            balanced=True,
        ),
        Dataset(
            "random_pixels",
            "independent uniform [0, 1) pixels (not normalized) with balanced random "
            "labels, generated from the seed, no download (Sec. 4.2, Fig. 4).",
            RandomPixels(),
            input_shape=None,
        ),
        Dataset(
            "mnist_subset",
            "the first 100 training and 50 test images of each digit of MNIST, shipped in "
            "nc_keras/assets (works offline); preprocessed as mnist.",
            Bundled("mnist_subset.npz"),
            MNIST_CLASSES,
            mean=MNIST_MEAN,
            std=MNIST_STD,
        ),
        Dataset(
            "folder",
            "your own class-folder tree at data_dir: train/<class>/*.png|jpg, "
            "test/<class>/... (classes in sorted folder order).",
            ClassFolders(),
            input_shape=None,
        ),
    )
}
NAMES = tuple(DATASETS)


def get(name):
    """The catalogue entry `name`; `ValueError` naming the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {NAMES}")
    return DATASETS[name]


def check_options(entry, options):
    """`ValueError` for options the entry's source does not take."""
    unknown = set(options) - set(entry.options)
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for {entry.name!r}; "
            f"it takes {sorted(entry.options) or 'none'}"
        )


def info(name, data_dir=None, **options):
    """Describe dataset `name` without loading it: a `DatasetInfo`.

    Only `"folder"` needs `data_dir`: its classes and sizes are read from the
    tree, and unless `mean` and `std` are given its training split is
    decoded (and cached) to compute them. Options are those of `load`.
    """
    return get(name).info(data_dir, **options)


def describe(indent=""):
    """The datasets, one line each: `name: help` and its options with defaults.

    For `--dataset` help texts and `load`'s docstring.
    """
    lines = []
    for entry in DATASETS.values():
        line = f"{indent}- {entry.name}: {entry.help}"
        if entry.mean is not None:
            line += f" Normalized with mean {_constant(entry.mean)}, std {_constant(entry.std)}."
        if entry.options:
            line += " Options: " + ", ".join(f"{key}={value!r}" for key, value in entry.options.items()) + "."
        lines.append(line)
    return "\n".join(lines)


def _constant(values):
    """0.1307 for (0.1307, 0.1307, 0.1307); the tuple otherwise."""
    return values[0] if len(set(values)) == 1 else values


__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "DATASETS", "Dataset", "DatasetInfo",
    "MNIST_CLASSES", "MNIST_MEAN", "MNIST_STD", "NAMES", "SPLITS",
    "check_options", "describe", "get", "info",
]  # fmt: skip
