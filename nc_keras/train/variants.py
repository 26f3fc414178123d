"""Several variants of one configuration, trained and overlaid in one figure.

This is what each of the paper's figures compares (Figs. 3-5: optimizers,
widths, classifiers): one base `TrainConfig`, a few fields changed per run.
"""

import dataclasses
from pathlib import Path

from nc_keras.run_folder import FIGURE, RunFolder, write_text
from nc_keras.train.run import summarize, train

SUMMARY_TABLE = "summary.md"


def variant_folder(output_dir, label):
    """The run folder of the variant called `label` (a file-system-safe name)."""
    return Path(output_dir) / label.replace(" ", "_").replace("/", "-")


def train_variants(base, variants, output_dir, layout="default", title=None, verbose="auto"):
    """Trains several variants of one configuration and overlays them.

    Each variant is a dict of `TrainConfig` fields (with a `label`) applied
    on top of `base`; it runs in `output_dir/<label>` (resuming it if it was
    interrupted, skipping it if it finished). Then `output_dir/figure.png`
    overlays all runs in `layout` (see `nc_keras.plots.LAYOUTS`) and
    `output_dir/summary.md` tabulates their last epochs (`write_summary`).

    Returns:
        A list of (label, history) pairs.
    """
    from nc_keras import plots
    from nc_keras.callbacks import read_csv_log

    output_dir = Path(output_dir)
    results, run_dirs = [], []
    for variant in variants:
        label = variant["label"]
        folder = RunFolder(variant_folder(output_dir, label))
        if folder.finished:
            print(f"[{label}] finished earlier; kept as is ({folder.root})")
            history = read_csv_log(folder.log)
        else:
            print(f"[{label}] training into {folder.root}")
            config = dataclasses.replace(base, output_dir=str(folder.root), **variant)
            history = train(config, verbose=verbose)
        results.append((label, history))
        run_dirs.append(folder.root)
    figure = plots.plot_runs(run_dirs, output_dir / FIGURE, layout=layout, title=title)
    summary = write_summary(output_dir, run_dirs, title=title)
    print(summary.read_text())
    print(f"figure: {figure}")
    return results


# What summary.md says below its table, so that the numbers read right.
READING_NOTES = (
    "Lower NC1-NC4 means more collapse (0: the features of each class have "
    "collapsed to their mean, and the means and the classifier form a simplex "
    "ETF). Train and test accuracy are those of the NC measurement's pass, in "
    "eval mode (BatchNorm's moving statistics, no augmentation)."
)
ETF_NOTE = (
    "NC2 of a fixed simplex-ETF classifier is zero by construction (its W is "
    "an exact ETF; values near 1e-16 are round-off): it says nothing about "
    "the features there, NC1 and NC3 do."
)


def write_summary(output_dir, run_dirs, title=None):
    """Writes `output_dir/summary.md`: what the runs are, their last epochs, how to read them.

    Reads each run's `log.csv` and config.json, so it also rebuilds the
    summary of runs trained earlier. Returns the path written.
    """
    from nc_keras.callbacks import read_csv_log
    from nc_keras.describe import describe_runs, read_configs, run_label
    from nc_keras.reporting import format_table

    configs = read_configs(run_dirs)
    rows = [
        dict(summarize(read_csv_log(RunFolder(run).log)), label=run_label(run)) for run in run_dirs
    ]
    table = format_table(
        rows,
        ["label", ("epochs_completed", "epochs"), ("nc_accuracy", "train acc"),
         ("val_nc_accuracy", "test acc"), "nc1", "nc2", "nc3", "nc4"],
        formats={"nc_accuracy": ".4f", "val_nc_accuracy": ".4f",
                 **{f"nc{i}": ".3e" for i in range(1, 5)}},
    )  # fmt: skip
    notes = [READING_NOTES]
    if any(config.get("classifier") == "etf" for config in configs):
        notes.append(ETF_NOTE)
    parts = [f"# {title}" if title else None, describe_runs(configs), table, *notes]
    path = Path(output_dir) / SUMMARY_TABLE
    write_text(path, "\n\n".join(part for part in parts if part) + "\n")
    return path
