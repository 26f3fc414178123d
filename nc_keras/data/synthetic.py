"""Generated data: random pixels and balanced random labels (Sec. 4.2, Fig. 4).

Random labels come from numpy's legacy `RandomState`, whose streams numpy
keeps stable across versions and machines, so a seed gives the same labels
everywhere. Random pixels are integer hashes of (seed, split, example,
pixel), so an example's image is the same whatever the batch, the shuffle or
the machine, and nothing is stored (50,000 float images would take 600 MB).
"""

import hashlib

import numpy as np

from nc_keras.data.readers import SPLITS

_GOLDEN = 0x9E3779B9  # spreads consecutive pixel indices over the hash input


def balanced_random_labels(size, num_classes, seed, split):
    """A seeded permutation of [0, 1, ..., K-1, 0, 1, ...]: balanced when K | size."""
    rng = np.random.RandomState([seed, SPLITS.index(split)])
    return rng.permutation(np.arange(size) % num_classes).astype(np.int64)


class RandomPixelFeed:
    """Uniform [0, 1) float32 pixels computed per batch from the example index.

    What `nc_keras.data.load` draws batches from (as `ArrayFeed` for stored
    images): `labels`, `num_classes`, `description`, `fetch_fn()` (positions
    -> images) and `normalize_fn()` (the identity: the paper's random pixels
    are used as they are).
    """

    def __init__(self, split, seed, image_shape, labels, num_classes):
        self.split, self.seed, self.image_shape = split, seed, tuple(image_shape)
        self.labels, self.num_classes = labels, num_classes
        self.description = f"generated from seed {seed}"

    @property
    def size(self):
        return len(self.labels)

    def fetch_fn(self):
        import tensorflow as tf

        key = int(_split_key(self.seed, self.split))
        pixels_per_image = int(np.prod(self.image_shape))

        def fetch(positions):
            index = tf.cast(positions, tf.uint32)[:, None]
            pixel = tf.constant(np.arange(pixels_per_image, dtype=np.uint32)[None, :])
            row = _hash32_tf(tf.bitwise.bitwise_xor(index, tf.constant(key, tf.uint32)))
            bits = _hash32_tf(row + pixel * tf.constant(_GOLDEN, tf.uint32))
            top24 = tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32))
            values = tf.cast(top24, tf.float32) * (1.0 / (1 << 24))
            return tf.reshape(values, (-1, *self.image_shape))

        return fetch

    def normalize_fn(self):
        return lambda batch: batch


def random_pixels_reference(seed, split, index, image_shape=(32, 32, 3)):
    """Numpy reference for one random-pixels image (for checks and tests)."""
    key = _split_key(seed, split)
    row = _hash32_np(np.uint32(index) ^ key)
    pixel = np.arange(int(np.prod(image_shape)), dtype=np.uint32)
    with np.errstate(over="ignore"):
        bits = _hash32_np(row + pixel * np.uint32(_GOLDEN))
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
    # The same hash as _hash32_np, on uint32 tensors.
    import tensorflow as tf

    def xorshift(x, bits):
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(bits, tf.uint32)))

    x = xorshift(x, 16) * tf.constant(0x7FEB352D, tf.uint32)
    x = xorshift(x, 15) * tf.constant(0x846CA68B, tf.uint32)
    return xorshift(x, 16)
