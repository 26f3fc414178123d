"""`load`: one split of a catalogue dataset as a batched `tf.data.Dataset`.

Every split is decoded once into uint8 arrays held in memory (CIFAR-10
train: 150 MB; MNIST train at 32x32: 61 MB); the dataset holds positions
only, and every batch is gathered from the arrays, augmented and normalized
in one vectorized step. ImageNet (and `tfds:<name>` with `image_size`) is
too large for that: its images stay encoded and are decoded per example in
the tf.data graph (`nc_keras.data.streaming`).

Subsets and randomness:

- `samples_per_class=n` keeps the first n examples of each class in the
  split's stored order (file order for IDX files and pickles, sorted file
  names for image trees, tfds's order for tfds, index order for
  random_pixels); it is the same subset on every call, whatever the seed.
  A class with fewer than n examples raises `ValueError`. For
  cifar10_random the classes are the random labels.
- Imbalanced subsets: `samples_per_class=[n_0, ..., n_{K-1}]` keeps the
  first n_k of class k, `imbalance_ratio=R` the long-tailed profile
  n_k = floor(n_max (1/R)^(k/(K-1))) (`nc_keras.data.profiles`), exactly.
- `seed` fixes the random labels (`random_labels=True`, cifar10_random,
  random_pixels), the random pixels, the shuffling order and the
  augmentation.
- `shuffle=None` shuffles the training split only (reshuffled every epoch).
- `epochs=range(first, last)` makes each epoch's order and augmentation a
  function of (seed, epoch) alone, so that training resumed at an epoch
  sees the batches an uninterrupted run would (without it, the k-th pass
  over the dataset gets the k-th order of one seeded stream).
"""

import logging

import numpy as np

from nc_keras.data import catalogue, profiles, synthetic
from nc_keras.data.readers import SPLITS
from nc_keras.data.streaming import StreamFeed

_LOG = logging.getLogger(__name__)  # says which source each load() used


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
    epochs=None,
    imbalance_ratio=None,
    max_batches=None,
    **options,
):
    """Load one split of a dataset as a batched, prefetched `tf.data.Dataset`.

    Datasets (`nc_keras.data.DATASETS`):

{datasets}

    Args:
        name: one of `NAMES` (above).
        split: `"train"` or `"test"`.
        batch_size: examples per batch.
        data_dir: where local files or prepared tfds data live (the layouts
            searched are in `nc_keras.data.sources`); required for
            `"folder"`.
        samples_per_class: keep only the first n examples of every class
            (balanced, the same on every call), or the first n_k of class k
            for a list of K counts; `ValueError` if a class has fewer.
        augment: `crop_and_flip` (random crop with 4 pixels of zero padding,
            random horizontal flip; Sec. 4.3, Fig. 5), training split only
            (ignored for "test", so one set of arguments serves both).
        shuffle: shuffle the examples, reshuffled every epoch; `None` means
            shuffle the training split only.
        seed: fixes random labels, random pixels, the shuffle and the
            augmentation.
        download: allow tensorflow-datasets to download (when online).
        drop_remainder: drop the last, smaller batch.
        epochs: None (one epoch per pass over the dataset, reshuffled and
            re-augmented on every pass), or the epoch numbers to yield, back
            to back in one pass (e.g. `range(start, total)` with
            `model.fit(..., steps_per_epoch=cardinality // len(epochs))`):
            epoch e's order and augmentation depend on (seed, e) only.
        imbalance_ratio: R >= 1: keep the long-tailed profile
            n_k = floor(n_max (1/R)^(k/(K-1))), n_max = `samples_per_class`
            or the smallest class's size (Cui et al. 2019;
            `nc_keras.data.profiles`).
        max_batches: at most this many batches of each epoch (or pass), its
            first ones; the data is not repeated to fill them (a quick
            pre-flight run of a full-size configuration).
        **options: the dataset's options (above). Every dataset takes
            `random_labels=True`: every label replaced by a seeded,
            balanced random assignment (Sec. 4.2), before any subset is
            taken (so `samples_per_class` counts random classes).

    Returns:
        A `tf.data.Dataset` yielding `(images, labels)`: float32 of shape
        `(batch, height, width, channels)` and int32 of shape `(batch,)`,
        which `model.fit` accepts on the TensorFlow, JAX and torch backends.

    Raises:
        DataNotFoundError: no source has the dataset.
        ValueError: unknown name/split/option, or too few examples per class.
    """
    import tensorflow as tf

    entry = catalogue.get(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    catalogue.check_options(entry, options)
    if shuffle is None:
        shuffle = split == "train"
    augment = bool(augment) and split == "train"

    random_labels = options.pop("random_labels", entry.random_labels)
    feed = entry.source.read(entry, split, data_dir, download, seed, options)
    if random_labels:
        feed.labels = synthetic.balanced_random_labels(feed.size, feed.num_classes, seed, split)
    _LOG.info("%s %s: %d examples from %s", name, split, feed.size, feed.description)
    subset = samples_per_class is not None or imbalance_ratio is not None
    if isinstance(feed, StreamFeed) and not subset and not random_labels:
        # Every example with its stored label: no pass over the labels.
        return feed.dataset(None, None, batch_size, shuffle, augment, seed, drop_remainder, epochs, max_batches)
    indices = np.arange(len(feed.labels))
    counts = profiles.class_counts(
        feed.labels, feed.num_classes, samples_per_class, imbalance_ratio, f"{name} {split}"
    )
    if counts is not None:
        indices = first_per_class(feed.labels, counts, feed.num_classes, f"{name} {split}")
    labels = feed.labels[indices].astype(np.int32)
    if isinstance(feed, StreamFeed):
        return feed.dataset(indices, labels, batch_size, shuffle, augment, seed, drop_remainder, epochs, max_batches)

    # The dataset holds positions only; each batch gathers its images from
    # the in-memory arrays in one vectorized op, much faster than slicing
    # and shuffling 50,000 separate image tensors.
    positions = indices.astype(np.int64)
    if epochs is None:
        dataset = tf.data.Dataset.from_tensor_slices((positions, labels))
        if shuffle:
            dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if max_batches:
            dataset = dataset.take(max_batches)
        if augment:
            # One fresh random seed pair per batch, a new stream every epoch.
            batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            dataset = tf.data.Dataset.zip(dataset, batch_seeds)
    else:
        dataset = _epoch_stream(positions, labels, epochs, batch_size, shuffle, augment, seed,
                                drop_remainder, max_batches)
    fetch, normalize = feed.fetch_fn(), feed.normalize_fn()
    if augment:

        def make_batch(batch, rng_seed):
            positions, y = batch
            return normalize(crop_and_flip(fetch(positions), rng_seed)), y

    else:

        def make_batch(positions, y):
            return normalize(fetch(positions)), y

    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


load.__doc__ = load.__doc__.replace("{datasets}", catalogue.describe(indent="    "))


def _epoch_stream(positions, labels, epochs, batch_size, shuffle, augment, seed, drop_remainder,
                  max_batches=None):
    """The batches of `epochs`, back to back; epoch e's depend on (seed, e) only.

    Stateless random ops keyed by (seed, epoch, batch) replace tf.data's
    seeded shuffle, whose k-th order depends on how many passes came before.
    """
    import tensorflow as tf

    count = len(positions)
    positions, labels = tf.constant(positions), tf.constant(labels)

    def one_epoch(epoch):
        epoch_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), epoch)
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=epoch_seed)
        batches = tf.data.Dataset.from_tensor_slices(
            (tf.gather(positions, order), tf.gather(labels, order))
        ).batch(batch_size, drop_remainder=drop_remainder)
        if max_batches:
            batches = batches.take(max_batches)
        if augment:
            # ((positions, labels), seed pair), as the seeded stream gives.
            batches = batches.enumerate().map(
                lambda step, batch: (batch, tf.random.experimental.stateless_fold_in(epoch_seed, step))
            )
        return batches

    epochs = np.asarray(list(epochs), np.int64)
    per_epoch = count // batch_size if drop_remainder else -(-count // batch_size)
    per_epoch = min(per_epoch, max_batches or per_epoch)
    stream = tf.data.Dataset.from_tensor_slices(epochs).flat_map(one_epoch)
    # flat_map hides the length; Keras and the progress bar want it.
    return stream.apply(tf.data.experimental.assert_cardinality(len(epochs) * per_epoch))


def first_per_class(labels, n, num_classes, what="dataset"):
    """Positions of the first `n` examples of each class, in stored order.

    `n` is one count for every class, or a list of K counts (n_k for class
    k). `ValueError` when a class of `what` has fewer examples than asked.
    """
    counts = list(n) if isinstance(n, (list, tuple)) else [n] * num_classes
    profiles.check_class_profile(counts, None)
    if len(counts) != num_classes:
        raise ValueError(f"{what}: {len(counts)} counts for {num_classes} classes")
    chosen = []
    for k, n_k in enumerate(counts):
        members = np.flatnonzero(labels == k)
        if len(members) < n_k:
            raise ValueError(
                f"{what}: class {k} has {len(members)} examples, fewer than samples_per_class={n_k}"
            )
        chosen.append(members[: int(n_k)])
    return np.sort(np.concatenate(chosen))  # keep the stored order


def crop_and_flip(batch, rng_seed, pad=4):
    """`RandomCrop(size, padding=pad)` with zero fill + `RandomHorizontalFlip()`, per image.

    The torchvision transforms of the paper's augmented runs (Sec. 4.3,
    Fig. 5), on the raw images (so the padding is black, before
    normalization). Vectorized over the batch: every image gets its own
    offsets and flip from one stateless draw seeded by `rng_seed` (two
    integers), so a batch costs a pad and two gathers.
    """
    import tensorflow as tf

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
