"""Datasets too large to decode into memory: encoded images decoded per batch.

ImageNet's 1.28 million training images take about 190 GB as uint8 arrays,
so they are not decoded up front as the small datasets are
(`sources.ArrayFeed`). Instead tensorflow-datasets' records are read with
the image left encoded (`tfds.decode.SkipDecoding`), and every example is
decoded to uint8 inside the `tf.data` graph, in parallel, as its batch is
built:

- evaluation (`resize_and_centre_crop`): the shorter side resized to 256,
  the centre 224 x 224 cut out (torchvision's `Resize(256)`,
  `CenterCrop(224)`, the standard ImageNet evaluation; for other sizes the
  same ratio, resize = round(size / 0.875));
- training with `augment=True` (`random_resized_crop`): a random crop of
  8% to 100% of the image's area with aspect ratio 3/4 to 4/3, resized to
  224 x 224, flipped left-right with probability 1/2 (torchvision's
  `RandomResizedCrop(224)`, `RandomHorizontalFlip()`; He et al. 2016 after
  Szegedy et al. 2015). A JPEG is decoded only inside its crop window
  (`tf.image.decode_and_crop_jpeg`). When 10 draws find no crop, the
  whole image is used (torchvision falls back to a centre crop).

Then the batch is normalized in float32, `(x / 255 - mean) / std`.

Order and randomness: records are read in stored order (tfds shuffled
them when it prepared the data) and shuffled within consecutive blocks of
`SHUFFLE_BUFFER` encoded images; each epoch's order and every example's
crop depend on (seed, epoch, example) only, so with `epochs` a resumed run
sees the batches an uninterrupted one would.
"""

import numpy as np

SHUFFLE_BUFFER = 4096  # encoded ImageNet JPEGs: about 450 MB
CROP_AREA = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
EVAL_CROP_FRACTION = 0.875  # 224 / 256


def resize_and_centre_crop(encoded, size):
    """uint8 (size, size, 3): shorter side resized to round(size / 0.875), centre crop.

    `encoded`: one encoded image (a string tensor). The resize is bilinear
    with antialiasing, as PIL's; the long side is floor(resize * long /
    short), as torchvision's `Resize(int)`.
    """
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    resize = round(size / EVAL_CROP_FRACTION)
    scale = resize / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.floor(shape * scale + 1e-6), tf.int32), size)
    image = tf.image.resize(image, new, method="bilinear", antialias=True)
    top = (new[0] - size) // 2
    left = (new[1] - size) // 2
    image = image[top : top + size, left : left + size]
    return _to_uint8(tf.ensure_shape(image, (size, size, 3)))


def random_resized_crop(encoded, seed, size):
    """uint8 (size, size, 3): a random crop of 8-100% of the area, ratio 3/4-4/3, resized, maybe flipped.

    `seed`: two int32/int64 integers (a stateless seed); the same seed
    gives the same crop and flip.
    """
    import tensorflow as tf

    seed = tf.cast(seed, tf.int64)
    is_jpeg = tf.io.is_jpeg(encoded)

    def window(shape):
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape, tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
            min_object_covered=0.0, aspect_ratio_range=CROP_RATIO, area_range=CROP_AREA,
            max_attempts=10, use_image_if_no_bounding_boxes=True,
        )  # fmt: skip
        return begin[:2], extent[:2]

    def from_jpeg():
        begin, extent = window(tf.io.extract_jpeg_shape(encoded))
        return tf.image.decode_and_crop_jpeg(encoded, tf.concat([begin, extent], 0), channels=3)

    def from_other():  # PNG and the like: decoded whole, then cut
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        begin, extent = window(tf.shape(image))
        return tf.slice(image, tf.concat([begin, [0]], 0), tf.concat([extent, [3]], 0))

    crop = tf.cond(is_jpeg, from_jpeg, from_other)
    image = tf.image.resize(crop, (size, size), method="bilinear", antialias=True)
    flip = tf.random.stateless_uniform((), seed=seed[::-1], maxval=2, dtype=tf.int32)
    image = tf.cond(flip == 1, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return _to_uint8(tf.ensure_shape(image, (size, size, 3)))


def _block_shuffle(records, seed):
    """Records permuted within consecutive blocks of SHUFFLE_BUFFER, block b by fold_in(seed, b).

    A stateless stand-in for `Dataset.shuffle`, whose seed must be a Python
    number for a run to be reproducible: here each epoch's order is a
    function of (seed, epoch). Examples do not cross blocks; tfds shuffled
    the records when it prepared them, so a block is a random sample.
    """
    import tensorflow as tf

    def permute(block_index, block):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(block[0])[0]), tf.random.experimental.stateless_fold_in(seed, block_index)
        )
        return tf.data.Dataset.from_tensor_slices(tuple(tf.gather(part, order) for part in block))

    return records.batch(SHUFFLE_BUFFER).enumerate().flat_map(permute)


def _to_uint8(image):
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


class StreamFeed:
    """One split of a prepared tfds dataset, read and decoded batch by batch.

    What `nc_keras.data.load` draws from instead of an `ArrayFeed`:
    `size`, `num_classes`, `description`, `labels` (the split's labels in
    stored order: read once, in a pass that leaves images encoded, only
    when a subset or imbalance needs them) and `dataset(...)`.
    """

    def __init__(self, builder, tfds_split, label_feature, num_classes, mean, std, image_size, description,
                 image_feature="image"):
        self.builder, self.tfds_split, self.label_feature = builder, tfds_split, label_feature
        self.image_feature = image_feature
        self.num_classes, self.mean, self.std = num_classes, mean, std
        self.image_size = int(image_size[0])
        self.description = description
        self._labels = None

    def records(self):
        """(index, encoded image, label) in stored order."""
        import tensorflow_datasets as tfds

        image, label = self.image_feature, self.label_feature
        records = self.builder.as_dataset(
            split=self.tfds_split, shuffle_files=False, decoders={image: tfds.decode.SkipDecoding()}
        )
        return records.enumerate().map(lambda i, ex: (i, ex[image], ex[label]))

    def decoded(self, train=False, batch_size=256):
        """uint8 batches (numpy) of every example in stored order, as evaluation decodes them."""
        import tensorflow as tf

        size = self.image_size
        images = self.records().map(lambda i, image, y: resize_and_centre_crop(image, size),
                                    num_parallel_calls=tf.data.AUTOTUNE)
        for batch in images.batch(batch_size).prefetch(tf.data.AUTOTUNE):
            yield batch.numpy()

    @property
    def size(self):
        splits = self.builder.info.splits
        if self.tfds_split in splits and splits[self.tfds_split].num_examples:
            return int(splits[self.tfds_split].num_examples)
        return len(self.labels)

    @property
    def labels(self):
        if self._labels is None:
            import tensorflow as tf

            labels = self.records().map(lambda i, image, y: y).batch(65536)
            self._labels = np.concatenate([y.numpy() for y in labels] or [np.zeros(0, np.int64)])
        return self._labels

    @labels.setter
    def labels(self, labels):  # random labels replace the stored ones
        self._labels = np.asarray(labels, np.int64)

    def dataset(self, indices, labels, batch_size, shuffle, augment, seed, drop_remainder, epochs, max_batches):
        """Batches of (float32 images, int32 labels).

        `indices`: the stored positions to keep, `labels` their labels
        (random labels, or the stored ones of a subset); both None: every
        example with its stored label, and no pass over the labels.
        """
        import tensorflow as tf

        records = self.records()
        count = self.size
        if indices is not None:
            keep = np.zeros(self.size, bool)
            table = np.full(self.size, -1, np.int32)
            keep[indices] = True
            table[indices] = labels
            keep, table = tf.constant(keep), tf.constant(table)
            records = records.filter(lambda i, image, y: keep[i])
            records = records.map(lambda i, image, y: (i, image, table[i]))
            count = len(indices)
        records = records.map(lambda i, image, y: (i, image, tf.cast(y, tf.int32)))
        size = self.image_size
        mean = tf.constant(self.mean, tf.float32)
        std = tf.constant(self.std, tf.float32)

        def one_epoch(epoch):
            epoch_seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
            examples = records
            if shuffle:
                examples = _block_shuffle(examples, epoch_seed)

            def decode(i, image, y):
                if augment:
                    return random_resized_crop(image, tf.random.experimental.stateless_fold_in(epoch_seed, i), size), y
                return resize_and_centre_crop(image, size), y

            examples = examples.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
            batches = examples.batch(batch_size, drop_remainder=drop_remainder)
            if max_batches:
                batches = batches.take(max_batches)
            return batches.map(lambda x, y: ((tf.cast(x, tf.float32) / 255.0 - mean) / std, y))

        per_epoch = count // batch_size if drop_remainder else -(-count // batch_size)
        per_epoch = min(per_epoch, max_batches or per_epoch)
        if epochs is None:
            # A fresh epoch number per pass: every pass reshuffles and re-crops.
            passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
            stream = passes.flat_map(one_epoch)
            total = per_epoch
        else:
            epochs = np.asarray(list(epochs), np.int64)
            stream = tf.data.Dataset.from_tensor_slices(epochs).flat_map(one_epoch)
            total = len(epochs) * per_epoch
        # flat_map hides the length; Keras and the progress bar want it.
        stream = stream.apply(tf.data.experimental.assert_cardinality(total))
        return stream.prefetch(tf.data.AUTOTUNE)
