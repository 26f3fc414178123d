"""Throughput of the input pipelines against what a ResNet18 training step consumes.

Issue 4: every pipeline of `nc_keras.data` must deliver images at least 5x
faster than a ResNet18 (CIFAR stem, batch 128) training step consumes them
on the same machine, so that input never limits training.

For each pipeline this measures
- setup: seconds `nc_keras.data.load` takes (reading/decoding the source;
  with a warm on-disk cache for image trees), once;
- images/s: batches of 128 drawn from the dataset (repeated, so epochs roll
  over), median over `--repeats` windows of `--batches` batches each, after
  a warm-up;
and the training rate: 128 / median seconds of `model.train_on_batch` on a
fixed batch of ResNet18 (`nc_keras.models.resnet18(num_classes=10,
input_shape=(32, 32, 3), stem="cifar")`, SGD momentum 0.9), after warm-up
steps that include compilation, on the current KERAS_BACKEND.

Prints a markdown table and appends it, with the date and machine, to
benchmarks/results/data.md (unless --no-append).

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_data.py [--data-dir DATA]
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "data.md"
REQUIRED_RATIO = 5.0

# (label, load() arguments); the ones reading real data need --data-dir.
PIPELINES = (
    ("cifar10", dict(name="cifar10"), True),
    ("cifar10 augment", dict(name="cifar10", augment=True), True),
    ("cifar10_random", dict(name="cifar10_random"), True),
    ("mnist", dict(name="mnist"), True),
    ("mnist augment", dict(name="mnist", augment=True), True),
    ("random_pixels", dict(name="random_pixels"), False),
    ("mnist_subset", dict(name="mnist_subset"), False),
)


def pipeline_rate(dataset, batches, repeats, warmup=5):
    """Median images/s over `repeats` windows of `batches` batches."""
    iterator = iter(dataset.repeat())
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(repeats):
        images = 0
        start = time.perf_counter()
        for _ in range(batches):
            x, _ = next(iterator)
            images += int(x.shape[0])
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def training_rate(batch_size, steps, warmup=2, model=None, input_shape=(32, 32, 3), num_classes=10):
    """Images/s of training steps on one fixed batch (median step).

    `model`: a built Keras model (default: ResNet18 with the CIFAR stem for
    `input_shape`, `num_classes`), compiled here with SGD momentum 0.9.
    """
    import keras

    from nc_keras.models import resnet18

    if model is None:
        model = resnet18(num_classes=num_classes, input_shape=input_shape, stem="cifar")
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, batch_size).astype(np.int32)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=40, help="batches per timing window")
    parser.add_argument("--repeats", type=int, default=5, help="timing windows per pipeline")
    parser.add_argument("--steps", type=int, default=5, help="timed ResNet18 training steps")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)

    import keras
    import tensorflow  # noqa: F401 - imported here, so no setup time includes it

    from nc_keras import data

    train_rate = training_rate(args.batch_size, args.steps)
    rows = []
    for label, arguments, needs_data in PIPELINES:
        if needs_data and not args.data_dir.is_dir():
            rows.append((label, None, None))
            continue
        start = time.perf_counter()
        dataset = data.load(
            split="train",
            batch_size=args.batch_size,
            data_dir=args.data_dir if needs_data else None,
            download=False,
            **arguments,
        )
        setup = time.perf_counter() - start
        rows.append((label, setup, pipeline_rate(dataset, args.batches, args.repeats)))

    from publish import publish_benchmark

    table_rows = []
    for label, setup, rate in rows:
        ratio = rate / train_rate if rate is not None else None
        table_rows.append({
            "pipeline": label if rate is not None else f"{label} (no data at {args.data_dir})",
            "setup_s": setup,
            "rate": rate,
            "ratio": ratio,
            "enough": None if ratio is None else ("yes" if ratio >= REQUIRED_RATIO else "NO"),
        })  # fmt: skip
    columns = [
        ("pipeline", "pipeline (train split)"), ("setup_s", "setup s"), ("rate", "pipeline images/s"),
        ("ratio", "x ResNet18 step"), ("enough", f">= {REQUIRED_RATIO:g}x"),
    ]  # fmt: skip
    backend = keras.backend.backend()
    notes = (
        f"Batch {args.batch_size}; pipeline: median of {args.repeats} windows of {args.batches} "
        f"batches; ResNet18 (CIFAR stem) training step on {backend}: median of {args.steps} "
        f"steps = **{train_rate:.0f} images/s**."
    )
    publish_benchmark(
        [(f"Data pipeline throughput (KERAS_BACKEND={backend})", table_rows, columns, notes)],
        RESULTS,
        {"setup_s": ".2f", "rate": ",.0f", "ratio": ",.0f"},
        save=not args.no_append,
        argv=[f"KERAS_BACKEND={backend}", "python", "benchmarks/bench_data.py", *(argv or [])],
    )

if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
