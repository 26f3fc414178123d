"""The ImageNet input pipeline's images per second against a ResNet's training step.

`nc_keras.data.load("imagenet")` reads tensorflow-datasets' records with the
images left as JPEG and decodes each in the tf.data graph as its batch is
built (random-resized-crop 224 + flip for training, resize 256 + centre crop
224 for evaluation). This measures whether that keeps up with training:

- the pipeline: `--images` generated JPEGs of ImageNet's typical size
  (`--image-size`, default 500x375, quality 90, smooth content plus noise so
  that they compress like photographs: about 75 KB each) are written in
  tfds's manual-download layout, tfds's own imagenet2012 builder prepares
  them (offline), and batches of `--batch-size` are drawn from the
  training pipeline (augmented) and the evaluation pipeline, repeated,
  after a warm-up: median images/s over `--repeats` windows of `--batches`
  batches;
- the model: median images/s of `train_on_batch` of ResNet18 and ResNet50
  (`nc_keras.models`, ImageNet stem, 224x224x3, 1000 classes, SGD momentum
  0.9) on a fixed batch of the same size, after warm-up steps that include
  compilation, on the current KERAS_BACKEND (`bench_data.training_rate`).

The ratio pipeline / model says how many times faster the input is
produced than consumed (>= 1: the input pipeline is not the bottleneck).
The table is printed and appended, with date, machine and load, to
benchmarks/results/data.md.

Usage:
    KERAS_BACKEND=torch python benchmarks/bench_imagenet_pipeline.py [--batch-size 128]
        [--images 512] [--steps 3] [--models resnet18,resnet50] [--no-append]
"""

import argparse
import io
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
RESULTS = REPO_ROOT / "benchmarks" / "results" / "data.md"

from bench_data import pipeline_rate, training_rate  # noqa: E402 (benchmarks/)


def photo_like(rng, height, width):
    """uint8 image: a smooth random field plus noise, compressing like a photograph."""
    coarse = rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1.001, height)
    cols = np.linspace(0, coarse.shape[1] - 1.001, width)
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    smooth = (coarse[r0][:, c0] * (1 - fr) * (1 - fc) + coarse[r0 + 1][:, c0] * fr * (1 - fc)
              + coarse[r0][:, c0 + 1] * (1 - fr) * fc + coarse[r0 + 1][:, c0 + 1] * fr * fc)
    noisy = smooth + rng.normal(0, 12, smooth.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_manual_download(root, images, size, classes=8, seed=0):
    """tfds's manual-download tarballs of `images` training and 64 validation JPEGs; mean bytes."""
    import tensorflow as tf

    from nc_keras import data

    rng = np.random.default_rng(seed)
    names = data.info("imagenet").class_names
    manual = root / "downloads" / "manual"
    manual.mkdir(parents=True)
    width, height = size
    sizes = []

    def jpeg():
        encoded = tf.io.encode_jpeg(photo_like(rng, height, width), quality=90).numpy()
        sizes.append(len(encoded))
        return encoded

    def add(tar, name, payload):
        member = tarfile.TarInfo(name)
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))

    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for k in range(classes):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as class_tar:
                for i in range(images // classes):
                    add(class_tar, f"{names[k]}_{i}.JPEG", jpeg())
            add(outer, f"{names[k]}.tar", inner.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in range(1, 65):
            add(tar, f"ILSVRC2012_val_{i:08d}.JPEG", jpeg())
    return float(np.mean(sizes))


def model_rate(name, batch_size, steps):
    """Images/s of training steps of `name` at 224x224, 1000 classes (median step)."""
    from nc_keras import models

    model = getattr(models, name)(num_classes=1000, input_shape=(224, 224, 3), stem="imagenet")
    return training_rate(batch_size, steps, model=model, input_shape=(224, 224, 3), num_classes=1000)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="the recipes' batch (SGD, Sec. 4.1)")
    parser.add_argument("--images", type=int, default=512, help="generated training JPEGs")
    parser.add_argument("--image-size", default="500x375", help="width x height of the JPEGs")
    parser.add_argument("--batches", type=int, default=4, help="batches per timing window")
    parser.add_argument("--repeats", type=int, default=3, help="timing windows per pipeline")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)
    size = tuple(int(n) for n in args.image_size.lower().split("x"))

    import keras

    from nc_keras import data
    from publish import publish_benchmark

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        mean_bytes = write_manual_download(root, args.images, size)
        start = time.perf_counter()
        data.load("imagenet", "test", data_dir=root, batch_size=args.batch_size)  # tfds prepares here
        prepare = time.perf_counter() - start
        for label, split, augment in (("train: random-resized-crop + flip", "train", True),
                                      ("test: resize 256 + centre crop", "test", False)):
            dataset = data.load("imagenet", split, data_dir=root, batch_size=args.batch_size, augment=augment)
            rows.append({"what": f"pipeline, {label}",
                         "rate": pipeline_rate(dataset, args.batches, args.repeats, warmup=3)})
    train_rate = rows[0]["rate"]
    for name in args.models.split(","):
        rate = model_rate(name, args.batch_size, args.steps)
        rows.append({"what": f"{name} training step (ImageNet stem, 224x224, K=1000)", "rate": rate,
                     "ratio": train_rate / rate})
    columns = [("what", "what"), ("rate", "images/s"), ("ratio", "training pipeline / step")]
    backend = keras.backend.backend()
    notes = (
        f"Batch {args.batch_size}. Pipeline: {args.images} generated {size[0]}x{size[1]} JPEGs "
        f"(mean {mean_bytes / 1024:.0f} KB, quality 90) in tfds's manual-download layout, prepared by "
        f"tfds's imagenet2012 builder ({prepare:.1f} s), read back as records and decoded in the "
        f"tf.data graph; median of {args.repeats} windows of {args.batches} batches. Steps on "
        f"{backend}: median of {args.steps} train_on_batch after 2 warm-up steps (SGD momentum 0.9). A ratio >= 1: "
        f"the input pipeline produces images faster than the step consumes them."
    )
    publish_benchmark(
        [(f"ImageNet input pipeline vs training step (KERAS_BACKEND={backend})", rows, columns, notes)],
        RESULTS, {"rate": ",.1f", "ratio": ",.1f"}, save=not args.no_append,
        argv=[f"KERAS_BACKEND={backend}", "python", "benchmarks/bench_imagenet_pipeline.py", *(argv or [])],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
