"""`nc-keras demo`: the main job of `make demo`."""

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

from nc_keras.io_utils import write_text
from nc_keras.run_folder import RunFolder

PARTS = ("ufm", "mnist", "params")
# The demo's own sub-folders of --output-dir, replaced on every run.
UFM_FOLDER, MNIST_FOLDER = "ufm", "mnist_mlp"

DESCRIPTION = """\
The offline demo of nc_keras: no network, no GPU, no data beyond what ships
with the package; about 2 minutes on a 2-core CPU. Three parts:

  ufm     the landscape claim of Theorems 3.1 and 3.2 on the unconstrained
          feature model (eq. (3); K=10, d=20, n=30): gradient descent, SGD,
          Adam and L-BFGS from 3 random starts each all reach the exact
          global minimum f* and collapse (NC2, NC3 -> 0);
  mnist   a real-data network: an MLP (width 256, depth 3) trained with SGD
          on the MNIST subset shipped in the package (100 images per class),
          to 100% training accuracy while NC1 falls (Sec. 4, Fig. 2);
  params  the trainable parameters a fixed simplex-ETF classifier and
          d = K save (Sec. 4.3), next to the paper's percentages.

It ends with one summary table and the folder holding its figures, CSV logs
and TensorBoard logs. The demo's own sub-folders of --output-dir (ufm/ and
mnist_mlp/) are replaced on every run; nothing else there is touched.
"""

def register(subparsers):
    from nc_keras.presets import DEMO_MNIST

    parser = subparsers.add_parser(
        "demo",
        help="run the offline demo: UFM landscape, a small MNIST run, parameter savings",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output-dir",
        default="demo_output",
        help="folder for the figures and logs (default: demo_output)",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, from {', '.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=DEMO_MNIST.epochs,
        help=f"epochs of the MNIST part (default: {DEMO_MNIST.epochs})",
    )
    parser.set_defaults(func=run)


def _parse_parts(text):
    from nc_keras.cli import UserError

    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise UserError(f"--parts: unknown {unknown or 'empty'}; choose from {', '.join(PARTS)}")
    return parts


def _fresh(directory):
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


def run_ufm(output_dir):
    """Theorems 3.1/3.2 on the UFM; returns summary rows and the figure."""
    from nc_keras import ufm

    print("== UFM landscape (Theorems 3.1 and 3.2): K=10, d=20, n=30, 4 optimizers x 3 starts")
    result = ufm.landscape(10, 20, 30, starts=3, seed=0, progress=True)
    print(result.table())
    folder = _fresh(output_dir / UFM_FOLDER)
    figure = ufm.plot_landscape(result, folder / "landscape.png")
    write_text(folder / "landscape.md", result.table() + "\n")
    worst_gap = max(abs(row["relative_gap"]) for row in result.rows)
    worst_nc = max(max(row["nc2"], row["nc3"]) for row in result.rows)
    rows = [
        {
            "part": "ufm",
            "check": f"{len(result.rows)} runs reach f* = {result.optimum.value:.6f}",
            "measured": f"max (f-f*)/f* = {worst_gap:.1e}",
            "target": "<= 1e-8",
            "ok": worst_gap <= 1e-8,
        },
        {
            "part": "ufm",
            "check": "every run collapses",
            "measured": f"max NC2, NC3 = {worst_nc:.1e}",
            "target": "<= 1e-4",
            "ok": worst_nc <= 1e-4,
        },
    ]
    return rows, [figure]


def run_mnist(output_dir, epochs):
    """A small real-data run through `nc_keras.train.train`."""
    import keras

    from nc_keras import train
    from nc_keras.presets import DEMO_MNIST

    folder = RunFolder(_fresh(output_dir / MNIST_FOLDER))
    config = dataclasses.replace(DEMO_MNIST, epochs=epochs, output_dir=str(folder.root))
    print(
        f"\n== MNIST subset (shipped, 100 images/class): MLP width {config.width} depth "
        f"{config.depth}, SGD lr {config.learning_rate}, weight decay {config.weight_decay}, "
        f"{epochs} epochs"
    )

    def report(epoch, logs):
        print(
            f"  epoch {epoch + 1:>3}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, "
            f"train acc {logs.get('nc_accuracy', float('nan')):.4f}, test acc "
            f"{logs.get('val_nc_accuracy', float('nan')):.4f}, NC1 {logs.get('nc1', float('nan')):.3e}",
            flush=True,
        )

    history = train.train(
        config, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=report)], verbose=0
    )
    nc1 = history["nc1"]
    ratio = nc1[0] / nc1[-1]
    accuracy = history["nc_accuracy"][-1]
    rows = [
        {
            "part": "mnist",
            "check": "training accuracy",
            "measured": f"{accuracy:.4f} (test {history['val_nc_accuracy'][-1]:.4f})",
            "target": "1.0",
            "ok": accuracy == 1.0,
        },
        {
            "part": "mnist",
            "check": "NC1 first epoch / last epoch",
            "measured": f"{nc1[0]:.3f} / {nc1[-1]:.4f} = {ratio:.1f}x",
            "target": ">= 10x",
            "ok": ratio >= 10,
        },
    ]
    return rows, [folder.figure, folder.log, folder.tensorboard]


def run_params():
    from nc_keras.cli import params

    print("\n== Parameter savings (Sec. 4.3)")
    params.run(params.default_args())
    from nc_keras.models import parameter_savings

    worst = max(abs(row["reduction_percent"] - row["paper_percent"]) for row in parameter_savings())
    return [
        {
            "part": "params",
            "check": "savings match the paper's 4 percentages",
            "measured": f"max difference {worst:.2f} points",
            "target": "<= 0.01",
            "ok": worst <= 0.01,
        }
    ]


def run(args):
    from nc_keras.reporting import format_table

    parts = _parse_parts(args.parts)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows, outputs = [], []
    if "ufm" in parts:
        part_rows, part_outputs = run_ufm(output_dir)
        rows += part_rows
        outputs += part_outputs
    if "mnist" in parts:
        part_rows, part_outputs = run_mnist(output_dir, args.epochs)
        rows += part_rows
        outputs += part_outputs
    if "params" in parts:
        rows += run_params()
    for row in rows:
        row["result"] = "ok" if row["ok"] else "FAILED"
    print("\n== Summary")
    print(format_table(rows, ["part", "check", "measured", "target", "result"]))
    print(f"\nFinished in {time.perf_counter() - started:.0f} s.")
    if outputs:
        print(f"Figures and logs are in {output_dir.resolve()}:")
        for path in outputs:
            print(f"  {path}")
        if "mnist" in parts:
            print(f"TensorBoard: tensorboard --logdir {RunFolder(output_dir / MNIST_FOLDER).tensorboard}")
    return 0 if all(row["ok"] for row in rows) else 1
