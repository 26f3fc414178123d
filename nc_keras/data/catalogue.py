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
of per-image stds; the paper used them. The other datasets are those of
Papyan, Han & Donoho (PNAS 2020), whose NC1-NC4 this library measures:
MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100, SVHN, STL-10 and ImageNet. Their
constants, beside each below, are the per-channel pixel mean and std of
the training split (on the [0, 1] scale) as the literature's training code
uses them; ImageNet's are torchvision's.

Every dataset takes `random_labels=True`: every label replaced by a
seeded, balanced random assignment (Zhang et al. 2017; the paper's
Sec. 4.2); `cifar10_random` is CIFAR-10 with it on by default.
"""

import dataclasses

from nc_keras.data.image_tree import ClassTree, TreeTarball
from nc_keras.data.readers import SPLITS, CifarPickles, IdxFiles
from nc_keras.data.sources import (
    TFDS_PREFIX,
    Bundled,
    ClassFolders,
    Files,
    LabelSet,
    RandomPixels,
    TfdsImages,
    tfds_entry,
)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
MNIST_MEAN = (0.1307,) * 3  # grey is copied to 3 channels
MNIST_STD = (0.3081,) * 3
# CIFAR-100's label order is the sorted class names (its meta file's order).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
CIFAR100_COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)  # fmt: skip
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)  # training split's pixel statistics
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MNIST_MEAN = (0.2860,) * 3  # training split's pixel statistics; grey copied to 3 channels
FASHION_MNIST_STD = (0.3530,) * 3
SVHN_CLASSES = MNIST_CLASSES  # tfds's svhn_cropped maps the digit 0 (label 10 in the .mat files) to 0
SVHN_MEAN = (0.4377, 0.4438, 0.4728)  # training split's pixel statistics
SVHN_STD = (0.1980, 0.2010, 0.1970)
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
STL10_MEAN = (0.4467, 0.4398, 0.4066)  # training images' pixel statistics
STL10_STD = (0.2603, 0.2566, 0.2713)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet models and example
IMAGENET_STD = (0.229, 0.224, 0.225)


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
        random_labels: the default of the `random_labels` option, which
            every dataset takes: replace every label by a seeded, balanced
            random assignment (`synthetic.balanced_random_labels`; Sec. 4.2).
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
        return {**self.source.options, "random_labels": self.random_labels}

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
        options = {key: value for key, value in options.items() if key != "random_labels"}
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
            "cifar100",
            "CIFAR-100: 100 classes of 500 training and 100 test images; label='coarse' "
            "gives its 20 superclasses (Papyan et al. 2020).",
            Files(
                "cifar100",
                title="CIFAR-100",
                host="www.cs.toronto.edu",
                local=(
                    CifarPickles(
                        "cifar-100-python",
                        files=(("train", ("train",)), ("test", ("test",))),
                        label_keys=(("fine", b"fine_labels"), ("coarse", b"coarse_labels")),
                    ),
                    ClassTree(("cifar100",)),
                ),
                label_sets=(
                    LabelSet("fine", CIFAR100_CLASSES),
                    LabelSet("coarse", CIFAR100_COARSE_CLASSES, "coarse_label"),
                ),
            ),
            CIFAR100_CLASSES,
            split_sizes={"train": 50_000, "test": 10_000},
            mean=CIFAR100_MEAN,
            std=CIFAR100_STD,
            balanced=True,
        ),
        Dataset(
            "fashion_mnist",
            "Fashion-MNIST, resized 28x28 -> 32x32, grey copied to 3 channels, as mnist "
            "(Papyan et al. 2020).",
            Files(
                "fashion_mnist",
                title="Fashion-MNIST",
                host="storage.googleapis.com",
                local=(
                    IdxFiles(("fashion_mnist", "FashionMNIST/raw")),
                    ClassTree(("fashion_mnist",), channels=1),
                ),
            ),
            FASHION_MNIST_CLASSES,
            split_sizes={"train": 60_000, "test": 10_000},
            mean=FASHION_MNIST_MEAN,
            std=FASHION_MNIST_STD,
            balanced=True,
        ),
        Dataset(
            "svhn",
            "SVHN cropped digits (tfds svhn_cropped; 73,257 train, 26,032 test, not balanced; "
            "the 'extra' images are not used) (Papyan et al. 2020).",
            Files(
                "svhn_cropped",
                title="SVHN",
                host="storage.googleapis.com",
                local=(ClassTree(("svhn",)),),
            ),
            SVHN_CLASSES,
            split_sizes={"train": 73_257, "test": 26_032},
            mean=SVHN_MEAN,
            std=SVHN_STD,
        ),
        Dataset(
            "stl10",
            "STL-10 at its 96x96 (500 train and 800 test images per class; the unlabeled "
            "images are not used) (Papyan et al. 2020).",
            Files(
                "stl10",
                title="STL-10",
                host="storage.googleapis.com",
                local=(ClassTree(("stl10",)),),
                image_size=(96, 96),
            ),
            STL10_CLASSES,
            input_shape=(96, 96, 3),
            split_sizes={"train": 5_000, "test": 8_000},
            mean=STL10_MEAN,
            std=STL10_STD,
            balanced=True,
        ),
        Dataset(
            "imagenet",
            "ImageNet ILSVRC-2012 through tensorflow-datasets' imagenet2012 (1,000 classes; "
            "'test' is its 50,000-image validation set), prepared from its manual download; "
            "decoded per batch: resize 256 + centre crop 224, augment=True random-resized-crop "
            "224 + flip (Papyan et al. 2020).",
            Files(
                "imagenet2012",
                title="ImageNet",
                host=None,
                image_size=(224, 224),
                splits=(("test", "validation"),),
                manual=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
                stream=True,
            ),
            None,
            input_shape=(224, 224, 3),
            split_sizes={"train": 1_281_167, "test": 50_000},
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
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
    """The catalogue entry `name` (or of `tfds:<name>`); `ValueError` naming the known ones otherwise."""
    if isinstance(name, str) and name.startswith(TFDS_PREFIX):
        return tfds_entry(name, lambda entry_name, help, source: Dataset(entry_name, help, source, input_shape=None))
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {NAMES}, or tfds:<name>")
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

    Only `"folder"` and `tfds:<name>` read data: a folder's classes and sizes
    come from the tree, a tfds set's from its prepared data (downloaded
    when online), and unless `mean` and `std` are given their training split
    is read once to compute them (cached). Options are those of `load`.
    """
    return get(name).info(data_dir, **options)


def dataset_options(options=None, random_labels=False):
    """The options `load` and `info` get: `options` plus `random_labels=True` when asked.

    Only True is passed on: a dataset whose default is True (cifar10_random)
    keeps it unless `options` says otherwise.
    """
    options = dict(options or {})
    if random_labels:
        options["random_labels"] = True
    return options


def parse_dataset_options(text):
    """"label=coarse,image_size=(224, 224)" -> {"label": "coarse", "image_size": (224, 224)}.

    Values are Python literals where they parse as one (numbers, tuples,
    True), else strings; commas inside brackets do not separate.
    """
    import ast

    options, depth, current = {}, 0, ""
    for char in str(text) + ",":
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            if current.strip():
                key, sep, value = current.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"dataset options: expected key=value, got {current.strip()!r}")
                try:
                    options[key.strip()] = ast.literal_eval(value.strip())
                except (ValueError, SyntaxError):
                    options[key.strip()] = value.strip()
            current = ""
        else:
            current += char
    return options


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
    lines.append(
        f"{indent}- tfds:<name>: any tensorflow-datasets image classification set (e.g. tfds:beans): "
        "classes and sizes from its DatasetInfo, normalized with its training split's mean and std "
        "(computed once, cached beside the data) unless mean and std are given. Options: "
        + ", ".join(f"{key}={value!r}" for key, value in TfdsImages.options.items())
        + ", random_labels=False."
    )
    return "\n".join(lines)


def _constant(values):
    """0.1307 for (0.1307, 0.1307, 0.1307); the tuple otherwise."""
    return values[0] if len(set(values)) == 1 else values


__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "DATASETS", "Dataset", "DatasetInfo",
    "MNIST_CLASSES", "MNIST_MEAN", "MNIST_STD", "NAMES", "SPLITS",
    "check_options", "dataset_options", "describe", "get", "info", "parse_dataset_options",
]  # fmt: skip
