"""Epoch-end cost of measuring intermediate layers (issue 13, item 6).

`NeuralCollapse(layers=[4 stage outputs])` on a ResNet18 (nc_keras.models.
resnet18_adapt, CIFAR stem): the stage outputs are global-average pooled
inside the extractor and streamed into one CollapseStatistics each, in the
same forward pass as the features. Timed against one `model.predict` over
the same images, and against the callback without layers, alternately in
one process per backend (medians of `--repeats`). Target: layers <= 1.3x
predict. The table is printed and appended, with date and machine, to
benchmarks/results/layers.md.

    .venv/bin/python benchmarks/bench_layers.py            # ~5 minutes
    .venv/bin/python benchmarks/bench_layers.py --quick    # smoke test, not saved
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_collapse import backend_child, medians  # noqa: E402 (benchmarks/)

RESULTS = REPO / "benchmarks" / "results" / "layers.md"
STAGES = ["layer1_1_out", "layer2_1_out", "layer3_1_out", "layer4_1_out"]


def child(repeats, quick, width):
    """Medians of predict, the callback alone, the callback with 4 layers."""
    import keras
    import numpy as np

    from nc_keras import models
    from nc_keras.callbacks import NeuralCollapse

    keras.utils.set_random_seed(0)
    N, K, batch = (256, 10, 128) if quick else (1024, 10, 256)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 32, 32, 3)).astype("float32")
    y = rng.integers(0, K, N)
    model = models.resnet18_adapt(width=width, num_classes=K)
    callbacks = {"features": NeuralCollapse((x, y), batch_size=batch),
                 "layers": NeuralCollapse((x, y), batch_size=batch, layers=STAGES)}
    for callback in callbacks.values():
        callback.set_model(model)
        callback.set_params({"epochs": 10**6, "verbose": 0})
        callback.on_train_begin()
        callback.on_epoch_end(0, {})  # compiles; ncc="previous" now has its means
    model.predict(x, batch_size=batch, verbose=0)  # compiles predict
    epoch = iter(range(1, 10**6))
    t = medians({
        "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
        "features": lambda: callbacks["features"].on_epoch_end(next(epoch), {}),
        "layers": lambda: callbacks["layers"].on_epoch_end(next(epoch), {}),
    }, repeats)
    return {"backend": keras.backend.backend(), "N": N, "batch": batch, **t}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=16, help="resnet18_adapt width k")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--quick", action="store_true", help="small sizes, no results file")
    parser.add_argument("--no-save", action="store_true", help="do not append to the results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.repeats, args.quick, args.width)))
        return

    from publish import publish_benchmark

    rows = []
    for backend in args.backends.split(","):
        r = backend_child(backend, [__file__, "--child", "--repeats", str(args.repeats),
                                    "--width", str(args.width)] + (["--quick"] if args.quick else []))
        rows.append({
            "backend": r["backend"], "predict_s": r["predict"],
            "features_s": r["features"], "features_ratio": r["features"] / r["predict"],
            "layers_s": r["layers"], "layers_ratio": r["layers"] / r["predict"],
        })
    notes = (
        f"resnet18_adapt(width={args.width}) (stage widths {args.width}-{8 * args.width}, "
        f"CIFAR stem), {r['N']} images 32x32x3, batch {r['batch']}, CPU; medians of "
        f"{args.repeats} alternated runs after warm-up, in one process per backend. "
        "features = NeuralCollapse epoch-end pass (ncc='previous', one pass); layers = "
        f"the same plus the 4 stage outputs ({', '.join(STAGES)}), pooled in the "
        "same forward pass. ratio = callback / model.predict; target for layers <= 1.3x."
    )
    columns = ["backend", "predict_s", "features_s", "features_ratio", "layers_s",
               "layers_ratio"]
    formats = {key: ".3g" for key in columns[1:]}
    publish_benchmark([("Intermediate layers: epoch-end cost vs model.predict", rows,
                        columns, notes)], RESULTS, formats,
                      save=not (args.quick or args.no_save),
                      argv=["benchmarks/bench_layers.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
