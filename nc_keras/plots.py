"""Figures laid out like the paper's: NC1-NC4 on a log scale, accuracies.

`plot_runs(run_dirs, path)` overlays the `log.csv` of several runs (written
by `nc_keras.train` or any fit with `NeuralCollapse` and `EpochCSVLogger`)
in one row of panels, one line per run, as Figures 3-5 of the paper. Under
the title, a line from the runs' config.json says what they are (model,
data subset, epochs, optimizer: `nc_keras.describe`), so that a CPU-sized
run never reads as the paper's; the legend sits below the panels, where it
covers no curve. `plot_depth(run_dir, path)` draws NC1 against depth: the
layers measured with `NeuralCollapse(layers=...)`, then the classifier's
features, one curve per measured epoch.
"""

import math
from pathlib import Path

from nc_keras.describe import run_label
from nc_keras.figures import new_figure, save_figure
from nc_keras.run_folder import RunFolder, nc_history_epochs

# Panel name -> (title, log columns tried in order, log y-axis, transform).
PANELS = {
    "nc1": ("$\\mathcal{NC}_1$", ("nc1",), True, None),
    "nc2": ("$\\mathcal{NC}_2$", ("nc2",), True, None),
    "nc3": ("$\\mathcal{NC}_3$", ("nc3",), True, None),
    "nc4": ("$\\mathcal{NC}_4$", ("nc4",), True, None),
    "test_nc1": ("test $\\mathcal{NC}_1$", ("val_nc1",), True, None),
    # The NC pass's accuracies: BatchNorm in inference mode, no augmentation
    # (not fit's running average over the epoch's training-mode batches).
    "train_accuracy": ("train accuracy (%)\n(eval-mode pass)", ("nc_accuracy", "accuracy"), False,
                       lambda v: 100 * v),
    "test_accuracy": ("test accuracy (%)", ("val_nc_accuracy", "val_accuracy"), False, lambda v: 100 * v),
    "train_error": ("train error (%)\n(eval-mode pass)", ("nc_accuracy", "accuracy"), False,
                    lambda v: 100 * (1 - v)),
    "ncc_mismatch": ("NCC mismatch", ("ncc_mismatch",), False, None),
    "loss": ("training loss", ("loss",), True, None),
    "minority_cosine": ("minority classifier cosine", ("minority_cosine",), False, None),
    "test_minority_accuracy": (
        "test minority accuracy (%)", ("val_minority_accuracy",), False, lambda v: 100 * v,
    ),
    "cdnv": ("CDNV", ("cdnv",), True, None),
    "gnc2": ("GNC2 (log kernel)", ("gnc2",), False, None),
    "unc3": ("UNC3 (uniform duality)", ("unc3",), True, None),
}
# The paper's figures: Fig. 3 (optimizers), Fig. 4 (random labels),
# Fig. 5 (fixed classifier), minority collapse under class imbalance (Fang
# et al. 2021), and the default, everything at once.
LAYOUTS = {
    "fig3": ("nc1", "nc2", "nc3", "nc4", "train_accuracy", "test_accuracy"),
    "fig4": ("nc1", "nc2", "nc3", "train_error"),
    "fig5": ("nc1", "nc3", "train_accuracy", "test_accuracy"),
    "minority": (
        "nc1", "nc2", "minority_cosine", "train_accuracy", "test_accuracy", "test_minority_accuracy",
    ),
    "default": ("nc1", "nc2", "nc3", "nc4", "train_accuracy", "test_accuracy"),
    # Token-level collapse in language models (Wu & Papyan 2024): the
    # metrics that need no simplex ETF, since K tokens far outnumber d + 1.
    "linguistic": ("loss", "train_accuracy", "nc1", "cdnv", "gnc2", "unc3"),
}


# `plot_depth`'s layout name on the command line.
DEPTH_LAYOUT = "depth"


def figure_title(title, run_dirs):
    """The figure's heading: `title` (if any), then what the runs are."""
    from nc_keras.describe import describe_runs, read_configs

    lines = [title] if title else []
    description = describe_runs(read_configs(run_dirs))
    if description:
        lines.append(description)
    return "\n".join(lines)


def plot_runs(run_dirs, path, layout="default", labels=None, title=None):
    """Overlays the per-epoch logs of several runs in the paper's layout.

    Args:
        run_dirs: run directories holding a `log.csv` (or CSV files).
        path: the image file to write (PNG, PDF, SVG: by extension).
        layout: a key of `LAYOUTS` ("fig3", "fig4", "fig5", "default") or a
            sequence of `PANELS` keys.
        labels: one legend entry per run; default: each run's `label` in
            its config.json, else its folder name.
        title: an optional figure title, shown above the description of
            the runs (`figure_title`).

    Returns:
        The path written.
    """
    return save_figure(draw_runs(run_dirs, layout=layout, labels=labels, title=title), path,
                       dpi=120)


def draw_runs(run_dirs, layout="default", labels=None, title=None):
    """The `matplotlib.figure.Figure` of `plot_runs` (arguments as there), not saved.

    It is not registered with pyplot: nothing to close.
    """
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    from nc_keras.callbacks import read_csv_log

    panels = LAYOUTS[layout] if isinstance(layout, str) else tuple(layout)
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise ValueError(f"unknown panels {unknown}; choose from {sorted(PANELS)}")
    run_dirs = [Path(r) for r in run_dirs]
    labels = list(labels) if labels else [run_label(r) for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs")
    logs = []
    for run in run_dirs:
        logs.append(read_csv_log(_log_path(run)))

    last_epoch = max([int(max(log["epoch"])) + 1 for log in logs if log.get("epoch")] + [1])
    width = 3.2 * len(panels)
    figure = new_figure(figsize=(width, 4.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)
    # One color per run in every panel, also where a run has no points.
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = {}
    for axis, panel in zip(axes[0], panels):
        panel_title, columns, log_scale, transform = PANELS[panel]
        plotted = []
        for index, (log, label) in enumerate(zip(logs, labels)):
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
                (line,) = axis.plot(xs, ys, marker="o" if len(xs) < 15 else None, markersize=3,
                                    label=label, color=colors[index % len(colors)])
                handles.setdefault(label, line)
                plotted.extend(ys)
        axis.set_title(panel_title, fontsize="medium")
        axis.set_xlabel("epoch")
        # Whole epochs only, also for a one-epoch run (a range too narrow
        # for MaxNLocator's integer ticks).
        axis.set_xlim(0.5, last_epoch + 0.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if log_scale:
            axis.set_yscale("log")
            if plotted:
                _readable_log_ticks(axis, min(plotted), max(plotted))
        axis.grid(True, which="major", alpha=0.3)
    if handles:
        # Below the panels, outside every axis: it never covers a curve.
        figure.legend(handles.values(), handles.keys(), loc="outside lower center",
                      ncol=min(len(handles), 4), fontsize="small", frameon=False)
    heading = figure_title(title, run_dirs)
    if heading:
        figure.suptitle(_wrap(heading, width), fontsize="medium")
    return figure


def _wrap(text, width_inches):
    """Wraps each line of `text` to the figure's width (about 11 characters an inch)."""
    import textwrap

    return "\n".join(textwrap.fill(line, int(11 * width_inches)) for line in text.splitlines())


def _readable_log_ticks(axis, low, high):
    """Labelled ticks on a log axis that spans [low, high]: few, and readable.

    Matplotlib labels minor ticks when fewer than two decades are in view,
    which crowds a small panel. Here only major ticks carry labels: the
    decades when at least two lie in the data's range, else 1-2-5 times
    the powers of ten, else (a range narrower than that) a few round
    numbers; minor ticks (2..9 of each decade) are unlabelled.
    """
    from matplotlib.ticker import (
        FixedLocator, LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter,
        ScalarFormatter,
    )  # fmt: skip

    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    axis.yaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    axis.yaxis.set_minor_formatter(NullFormatter())
    if sum(low <= 10.0**k <= high for k in range(first, last + 1)) >= 2:
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0,), numticks=7))
        axis.yaxis.set_major_formatter(LogFormatterSciNotation(base=10))
        return
    ticks = [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if low <= t <= high]
    if len(ticks) >= 2:
        axis.yaxis.set_major_locator(FixedLocator(ticks))
        axis.yaxis.set_major_formatter(_short_number)
    else:
        # As many digits as the ticks need to differ (0.2970, 0.2975).
        axis.yaxis.set_major_locator(MaxNLocator(nbins=4))
        axis.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))


def _short_number(value, _position=None):
    """A short tick label for 1, 2 or 5 times a power of ten: 0.02, 0.5, 20, 5e-05."""
    return f"{value:g}"


def _log_path(run):
    """The `log.csv` of a run folder (or `run` itself, a CSV file); it must exist."""
    run = Path(run)
    csv_path = run if run.suffix == ".csv" else RunFolder(run).log
    if not csv_path.exists():
        raise FileNotFoundError(f"no per-epoch log at {csv_path}")
    return csv_path


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

    from nc_keras.callbacks import read_csv_log

    csv_path = _log_path(run_dir)
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
    width = 1.1 * len(columns) + 2.5
    figure = new_figure(figsize=(width, 3.8), layout="constrained")
    axis = figure.subplots()
    colors = matplotlib.colormaps["viridis"]
    for order, row in enumerate(measured):
        shade = colors(order / max(len(measured) - 1, 1))
        axis.plot(range(len(columns)), [log[c][row] for c in columns], marker="o",
                  markersize=3, color=shade, label=f"epoch {log['epoch'][row] + 1}")
    axis.set_yscale("log")
    values = [log[c][row] for c in columns for row in measured]
    if values:
        _readable_log_ticks(axis, min(values), max(values))
    axis.set_xticks(range(len(columns)), labels, rotation=30, ha="right")
    axis.set_xlabel("depth")
    axis.set_ylabel("$\\mathcal{NC}_1$")
    axis.grid(True, which="major", alpha=0.3)
    if measured:
        # Right of the axis, never over a curve.
        figure.legend(loc="outside right upper", fontsize="small", frameon=False,
                      ncol=1 + len(measured) // 12)
    heading = figure_title(title, [csv_path.parent])
    if heading:
        figure.suptitle(_wrap(heading, width), fontsize="medium")
    return save_figure(figure, path, dpi=120)
