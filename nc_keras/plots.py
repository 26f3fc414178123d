"""Figures laid out like the paper's: NC1-NC4 on a log scale, accuracies.

`plot_runs(run_dirs, path)` overlays the `log.csv` of several runs (written
by `nc_keras.train` or any fit with `NeuralCollapse` and `EpochCSVLogger`)
in one row of panels, one line per run, as Figures 3-5 of the paper.
"""

import json
import math
from pathlib import Path

from nc_keras.run_folder import RunFolder, atomic_writer

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
    figure.tight_layout()
    path = Path(path)
    # Atomic, as every file of a run: an interrupted save leaves the old figure.
    with atomic_writer(path, "wb") as out:
        figure.savefig(out, format=path.suffix.lstrip(".") or None, dpi=120)
    plt.close(figure)
    return path
