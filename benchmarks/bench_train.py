"""Training throughput: nc_keras ResNet18 on each backend vs PyTorch loops.

Issue 6, item 6. Steps per second of one training step of ResNet18 (CIFAR
stem, 32x32x3 inputs, 10 classes, batch 128, SGD momentum 0.9, weight decay
5e-4) measured

- for `nc_keras.models.resnet18` + `nc_keras.optimizers.SGD` under
  `model.fit` on each Keras backend (one subprocess per backend, so each
  gets a fresh process), and, on torch, for the same network built from
  Keras's own Conv2D and BatchNormalization (what nc_keras's fused layers
  gain there);
- for a plain PyTorch loop of the same architecture (forward, loss,
  backward, `torch.optim.SGD.step`);
- for the same loop plus the extra eval-mode forward pass per step that the
  public reference code runs to log accuracy.

Each runs `--warmup` steps (compilation included) and then `--steps` timed
steps on a fixed random batch; the table shows the median step time, steps
per second, and the ratio to the plain PyTorch loop. The table is printed
and appended, with date and machine, to benchmarks/results/train.md.

Usage:
    python benchmarks/bench_train.py [--steps 8] [--warmup 3] [--backends tensorflow,jax,torch]
                                     [--keras-layers torch] [--no-append]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "train.md"
BATCH, CLASSES, SHAPE = 128, 10, (32, 32, 3)


def with_keras_layers(model):
    """The same network with Keras's own Conv2D and BatchNormalization.

    For timing only: an integer (PyTorch) padding becomes Keras's "same",
    which pads as many zeros (after the input instead of around it at
    stride 2), so every layer has the same shapes and cost.
    """
    import keras

    from nc_keras import layers

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, layers.Conv2D):
            config["padding"] = "same" if layer.symmetric_padding else layer.padding
            return keras.layers.Conv2D.from_config(config)
        if isinstance(layer, layers.BatchNormalization):
            return keras.layers.BatchNormalization.from_config(config)
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def keras_worker(steps, warmup, keras_layers):
    """Runs in a subprocess with KERAS_BACKEND set; prints step times (JSON)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from nc_keras import models, optimizers

    keras.utils.set_random_seed(0)
    model = models.resnet18(num_classes=CLASSES, input_shape=SHAPE, stem="cifar")
    if keras_layers:
        model = with_keras_layers(model)
    model.compile(
        optimizer=optimizers.SGD(0.05, momentum=0.9, weight_decay=5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH,) + SHAPE).astype("float32")
    y = rng.integers(0, CLASSES, BATCH).astype("int32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    stamps = []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: stamps.append(time.perf_counter())
    )
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, callbacks=[timer], verbose=0)
    times = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
    print(json.dumps(times[warmup:]))


def torch_resnet18():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for index in range(2):
            layers.append(Block(cin, width, 2 if stage and not index else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, CLASSES)]
    return nn.Sequential(*layers)


def torch_loop(steps, warmup, reference_style):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    model = torch_resnet18()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(BATCH, SHAPE[2], SHAPE[0], SHAPE[1])
    y = torch.randint(0, CLASSES, (BATCH,))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if reference_style:
            # The reference code's per-step accuracy: one more forward, eval mode.
            model.eval()
            with torch.no_grad():
                model(x).argmax(1).eq(y).float().mean().item()
        else:
            loss.item()
        times.append(time.perf_counter() - start)
    return times[warmup:]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed steps (default: 8)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (default: 3)")
    parser.add_argument("--backends", default="tensorflow,jax,torch",
                        help="Keras backends to measure (default: tensorflow,jax,torch)")
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to the results file")
    parser.add_argument("--keras-layers", default="torch",
                        help="backends also measured with Keras's own Conv2D and BatchNormalization "
                             "instead of nc_keras's fused ones ('' for none; default: torch)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        keras_worker(args.steps, args.warmup, args.keras_layers == "yes")
        return

    rows = []
    for label, reference_style in (("PyTorch loop", False), ("PyTorch loop + eval pass (reference)", True)):
        print(f"measuring {label} ...", flush=True)
        rows.append((label, torch_loop(args.steps, args.warmup, reference_style)))
    runs = [(backend, False) for backend in args.backends.split(",")]
    runs += [(backend, True) for backend in args.keras_layers.split(",") if backend]
    for backend, keras_layers in runs:
        label = f"nc_keras fit, {backend}" + (", Keras's Conv2D and BatchNormalization" if keras_layers else "")
        print(f"measuring {label} ...", flush=True)
        result = subprocess.run(
            [sys.executable, __file__, "--worker", backend, "--steps", str(args.steps),
             "--warmup", str(args.warmup), "--keras-layers", "yes" if keras_layers else ""],
            env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode:
            print(result.stderr[-2000:], file=sys.stderr)
            continue
        rows.append((label, json.loads(result.stdout.strip().splitlines()[-1])))

    from publish import publish_benchmark

    plain = statistics.median(rows[0][1])
    reference = statistics.median(rows[1][1])
    table_rows = [
        {
            "loop": label,
            "median_s": statistics.median(times),
            "steps_per_s": 1 / statistics.median(times),
            "vs_plain": plain / statistics.median(times),
            "vs_reference": reference / statistics.median(times),
        }
        for label, times in rows
    ]
    columns = [
        "loop", ("median_s", "median step (s)"), ("steps_per_s", "steps/s"),
        ("vs_plain", "x plain PyTorch"), ("vs_reference", "x reference-style"),
    ]  # fmt: skip
    notes = f"{args.steps} timed steps after {args.warmup} warm-up steps; ratios > 1: faster."
    publish_benchmark(
        [("ResNet18 training step (CIFAR stem, batch 128, SGD)", table_rows, columns, notes)],
        RESULTS,
        formats={"median_s": ".3f", "steps_per_s": ".3f", "vs_plain": ".2f", "vs_reference": ".2f"},
        save=not args.no_append,
        argv=["benchmarks/bench_train.py", *sys.argv[1:]],
    )

if __name__ == "__main__":
    main()
