"""Figures laid out like the paper's: NC1-NC4 on a log scale, accuracies.

`plot_runs(run_dirs, path)` overlays the `log.csv` of several runs (written
by `nc_keras.train` or any fit with `NeuralCollapse` and `EpochCSVLogger`)
in one row of panels, one line per run, as Figures 3-5 of the paper.
`plot_depth(run_dir, path)` draws NC1 against depth: the layers measured
with `NeuralCollapse(layers=...)`, then the classifier's features, one
curve per measured epoch.
"""

import json
import math
from pathlib import Path

from nc_keras.run_folder import RunFolder, atomic_writer, nc_history_epochs

# Panel name -> (title, log columns tried in order, log y-axis, transform).
PANELS = {
    "nc1": ("$\\mathcal{NC}_1$", ("nc1",), True, None),
    "nc2": ("$\\mathcal{NC}_2$", ("nc2",), True, None),
    "nc3": ("$\\mathcal{NC}_3$", ("nc3",), True, None),
    "nc4": ("$\\mathcal{NC}_4$", ("nc4",), True, None),
    "test_nc1": ("test $\\mathcal{NC}_1$", ("val_nc1",), True, None),
    "train_accuracy": ("training accuracy (%)", ("nc_accuracy", "accuracy"), False, lambda v: 100 * v),
    "test_accuracy": ("test accuracy (%)", ("val_nc_accuracy", "val_accuracy"), False, lambda v: 100 * v),
    "train_error": ("training error (%)", ("nc_accuracy", "accuracy"), False, lambda v: 100 * (1 - v)),
    "ncc_mismatch": ("NCC mismatch", ("ncc_mismatch",), False, None),
    "loss": ("training loss", ("loss",), True, None),
}
# The paper's figures: Fig. 3 (optimizers), Fig. 4 (random labels),
# Fig. 5 (fixed classifier), and the default, everything at once.
LAYOUTS = {
    "fig3": ("nc1", "nc2", "nc3", "nc4", "train_accuracy", "test_accuracy"),
    "fig4": ("nc1", "nc2", "nc3", "train_error"),
    "fig5": ("nc1", "nc3", "train_accuracy", "test_accuracy"),
    "default": ("nc1", "nc2", "nc3", "nc4", "train_accuracy", "test_accuracy"),
}


# `plot_depth`'s layout name on the command line.
DEPTH_LAYOUT = "depth"


def _label(run_dir):
    config = RunFolder(run_dir).config
    if config.exists():
        label = json.loads(config.read_text()).get("label")
        if label:
            return label
    return Path(run_dir).name


def plot_runs(run_dirs, path, layout="default", labels=None, title=None):
    """Overlays the per-epoch logs of several runs in the paper's layout.

    Args:
        run_dirs: run directories holding a `log.csv` (or CSV files).
        path: the image file to write (PNG, PDF, SVG: by extension).
        layout: a key of `LAYOUTS` ("fig3", "fig4", "fig5", "default") or a
            sequence of `PANELS` keys.
        labels: one legend entry per run; default: each run's `label` in
            its config.json, else its folder name.
        title: an optional figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from nc_keras.callbacks import read_csv_log

    panels = LAYOUTS[layout] if isinstance(layout, str) else tuple(layout)
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise ValueError(f"unknown panels {unknown}; choose from {sorted(PANELS)}")
    run_dirs = [Path(r) for r in run_dirs]
    labels = list(labels) if labels else [_label(r) for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs")
    logs = []
    for run in run_dirs:
        csv_path = run if run.suffix == ".csv" else RunFolder(run).log
        if not csv_path.exists():
            raise FileNotFoundError(f"no per-epoch log at {csv_path}")
        logs.append(read_csv_log(csv_path))

    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        panel_title, columns, log_scale, transform = PANELS[panel]
        for log, label in zip(logs, labels):
            column = next((c for c in columns if c in log), None)
            if column is None:
                continue
            points = [
                (epoch + 1, transform(v) if transform else v)
                for epoch, v in zip(log["epoch"], log[column])
                if isinstance(v, float) and not math.isnan(v)
            ]
            if log_scale:
                points = [(x, y) for x, y in points if y > 0]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, marker="o" if len(xs) < 15 else None, markersize=3, label=label)
        axis.set_title(panel_title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log_scale:
            axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _save(figure, path):
    """Writes `figure` to `path` (format by extension), closes it, returns the path."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    # Atomic, as every file of a run: an interrupted save leaves the old figure.
    with atomic_writer(path, "wb") as out:
        figure.savefig(out, format=path.suffix.lstrip(".") or None, dpi=120)
    plt.close(figure)
    return path


def _layer_order(run_dir, log):
    """Measured layers in depth order: as the NC history saved them, else the log's."""
    history = RunFolder(run_dir).nc_history
    files = nc_history_epochs(history) if history.is_dir() else []
    if files:
        import numpy as np

        with np.load(files[-1][1]) as npz:
            if "layers" in npz.files:
                return [str(name) for name in npz["layers"]]
    return [key.split("/", 1)[1] for key in log if key.startswith("nc1/")]


def plot_depth(run_dir, path, layers=None, title=None):
    """NC1 (log scale) against depth, one curve per measured epoch.

    Args:
        run_dir: a run directory with `log.csv` holding "nc1/<layer>"
            columns (`NeuralCollapse(layers=...)`), or that CSV file.
        path: the image file to write.
        layers: the layers in depth order; default: the order saved in the
            run's `nc_history/` (the callback's `layers`), else the CSV's.
        title: an optional figure title.
    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nc_keras.callbacks import read_csv_log

    run_dir = Path(run_dir)
    csv_path = run_dir if run_dir.suffix == ".csv" else RunFolder(run_dir).log
    if not csv_path.exists():
        raise FileNotFoundError(f"no per-epoch log at {csv_path}")
    log = read_csv_log(csv_path)
    layers = list(layers) if layers else _layer_order(csv_path.parent, log)
    missing = [name for name in layers if f"nc1/{name}" not in log]
    if not layers or missing:
        raise ValueError(f"{csv_path} has no nc1/<layer> column for {missing or 'any layer'}: "
                         "measure them with NeuralCollapse(layers=[...])")
    columns = [f"nc1/{name}" for name in layers] + ["nc1"]
    labels = layers + ["features"]
    measured = [row for row in range(len(log["epoch"]))
                if all(isinstance(log[c][row], float) and log[c][row] > 0 for c in columns)]
    figure, axis = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 3.4))
    colors = plt.get_cmap("viridis")
    for order, row in enumerate(measured):
        shade = colors(order / max(len(measured) - 1, 1))
        axis.plot(range(len(columns)), [log[c][row] for c in columns], marker="o",
                  markersize=3, color=shade, label=f"epoch {log['epoch'][row] + 1}")
    axis.set_yscale("log")
    axis.set_xticks(range(len(columns)), labels, rotation=30, ha="right")
    axis.set_xlabel("depth")
    axis.set_ylabel("$\\mathcal{NC}_1$")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize="small", ncol=1 + len(measured) // 8)
    if title:
        axis.set_title(title)
    return _save(figure, path)
