"""Input pipelines for the experiments of Zhu et al. (NeurIPS 2021), Sec. 4.

`load(name, split)` returns a batched, prefetched `tf.data.Dataset` of
`(images, labels)`: float32 NHWC images and int32 labels, which
`model.fit` accepts on the TensorFlow, JAX and torch backends alike.
`info(name)` says the number of classes, the input shape and the split sizes
without reading any data; `describe()` lists the datasets, `NAMES` names
them.

One module per concern:

* `catalogue`: one `Dataset` entry per dataset (name, help, classes, input
  shape, normalization, source, options): cifar10, mnist, cifar10_random,
  cifar100, fashion_mnist, svhn, stl10, imagenet, random_pixels,
  mnist_subset, folder; and `tfds:<name>` for any tensorflow-datasets image
  classification set. A new dataset is one entry there; `NAMES`, `info`,
  the option checks and `describe()` come from it. Every dataset takes
  `random_labels=True`;
* `sources`: where an entry's examples come from: tensorflow-datasets, then
  local files under `data_dir`, then a tfds download (`Files`); an array
  file in `nc_keras/assets` (`Bundled`); generated (`RandomPixels`); the
  user's tree (`ClassFolders`); and `DataNotFoundError`'s message;
* `readers`: IDX files, CIFAR pickles, bundled arrays, and MNIST's
  resize as torchvision's `Resize(32)` on PIL does it;
* `safe_pickle`: CIFAR pickles read without running code from them;
* `integrity`: files are read to their end and checked against the entry
  (labels, split and class sizes); a cut or damaged file raises
  `CorruptDataError` naming it;
* `image_tree`: class-folder trees and tarballs of them, decoded once and
  cached in `cache_dir()/decoded` (`$NC_KERAS_CACHE`, else
  `$XDG_CACHE_HOME/nc_keras`, else `~/.cache/nc_keras`);
* `download`: tfds's prepared data, preparation from a manual download
  (ImageNet), and downloads behind a fast probe of the download host
  (`host_reachable`);
* `streaming`: datasets too large for memory (ImageNet), decoded batch by
  batch in the tf.data graph (resize 256 + centre crop 224; random resized
  crop + flip);
* `synthetic`: random pixels (`random_pixels_reference` is their numpy
  reference) and balanced random labels;
* `profiles`: the per-class counts of a subset, balanced, a list, or
  long-tailed (`imbalance_ratio`, `long_tailed_counts`);
* `pipeline`: `load` with `samples_per_class`, normalization, augmentation
  (`crop_and_flip`), shuffling and batching.
"""

from nc_keras.data.catalogue import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    MNIST_CLASSES,
    MNIST_MEAN,
    MNIST_STD,
    NAMES,
    Dataset,
    DatasetInfo,
    dataset_options,
    describe,
    info,
    parse_dataset_options,
)
from nc_keras.data.image_tree import cache_dir
from nc_keras.data.integrity import CorruptDataError
from nc_keras.data.pipeline import crop_and_flip, load
from nc_keras.data.profiles import (
    check_class_profile,
    class_counts,
    long_tailed_counts,
    parse_samples_per_class,
)
from nc_keras.data.readers import SPLITS, DataNotFoundError, read_idx
from nc_keras.data.synthetic import random_pixels_reference

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "CorruptDataError", "DATASETS", "DataNotFoundError",
    "Dataset", "DatasetInfo", "MNIST_CLASSES", "MNIST_MEAN", "MNIST_STD", "NAMES", "SPLITS",
    "cache_dir", "check_class_profile", "class_counts", "crop_and_flip", "dataset_options", "describe", "info", "load", "long_tailed_counts", "parse_dataset_options", "parse_samples_per_class", "random_pixels_reference", "read_idx",
]  # fmt: skip
