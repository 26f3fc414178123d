"""Several variants of one configuration, trained and overlaid in one figure.

This is what each of the paper's figures compares (Figs. 3-5: optimizers,
widths, classifiers): one base `TrainConfig`, a few fields changed per run.
"""

import dataclasses
from pathlib import Path

from nc_keras.describe import describe_runs, read_configs, run_label
from nc_keras.io_utils import write_text
from nc_keras.run_folder import FIGURE, RunFolder
from nc_keras.train.run import summarize, train

SUMMARY_TABLE = "summary.md"


def variant_folder(output_dir, label):
    """The run folder of the variant called `label` (a file-system-safe name)."""
    return Path(output_dir) / label.replace(" ", "_").replace("/", "-")


def per_class_accuracy_table(run_dirs, labels, prefix="val_"):
    """Markdown table of each run's per-class accuracy at its last NC measurement.

    Read from the runs' `nc_history` (class_correct / counts, Fang et al.
    2021's view of imbalanced training); `prefix` "val_" for the test set,
    "train_" for the training set.
    """
    from nc_keras.callbacks import load_history
    from nc_keras.collapse.formulas import per_class_accuracy
    from nc_keras.reporting import format_table

    rows, num_classes = [], 0
    for run_dir, label in zip(run_dirs, labels):
        history = load_history(RunFolder(run_dir).nc_history)
        accuracy = per_class_accuracy(history[prefix + "class_correct"][-1], history[prefix + "counts"][-1])
        num_classes = max(num_classes, len(accuracy))
        rows.append({"label": label, **{f"class {k}": a for k, a in enumerate(accuracy)}})
    columns = ["label"] + [f"class {k}" for k in range(num_classes)]
    title = "test" if prefix == "val_" else "training"
    return f"Per-class {title} accuracy:\n\n" + format_table(
        rows, columns, formats=dict.fromkeys(columns[1:], ".2f")
    )


def train_variants(base, variants, output_dir, layout="default", title=None, verbose="auto"):
    """Trains several variants of one configuration and overlays them.

    Each variant is a dict of `TrainConfig` fields (with a `label`) applied
    on top of `base`; it runs in `output_dir/<label>` (resuming it if it was
    interrupted, skipping it if it finished). Then `output_dir/figure.png`
    overlays all runs in `layout` (see `nc_keras.plots.LAYOUTS`) and
    `output_dir/summary.md` tabulates their last epochs (`write_summary`).

    Returns:
        A list of (label, history) pairs.

    Raises:
        nc_keras.run_folder.RunFolderLocked: another live process runs a
            recipe into `output_dir` (or trains one of its variants).
    """
    output_dir = Path(output_dir)
    RunFolder(output_dir).check_writable()
    # One recipe per folder: the figure and summary.md are the folder's own
    # (each variant's run also locks its folder).
    with RunFolder(output_dir).lock():
        return _train_variants(base, variants, output_dir, layout, title, verbose)


def _train_variants(base, variants, output_dir, layout, title, verbose):
    from nc_keras import plots
    from nc_keras.callbacks import read_csv_log

    # What an interrupted write of the figure or summary.md left (only this
    # folder's own files: a variant's are its run's, removed by its train).
    for staging in output_dir.glob(".*.tmp"):
        staging.unlink(missing_ok=True)
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
    from nc_keras.reporting import format_table

    configs = read_configs(run_dirs)
    labels = [run_label(run) for run in run_dirs]
    rows = [
        dict(summarize(read_csv_log(RunFolder(run).log)), label=label)
        for run, label in zip(run_dirs, labels)
    ]
    columns = ["label", ("epochs_completed", "epochs"), ("nc_accuracy", "train acc"),
               ("val_nc_accuracy", "test acc"), "nc1", "nc2", "nc3", "nc4"]  # fmt: skip
    formats = {"nc_accuracy": ".4f", "val_nc_accuracy": ".4f", **{f"nc{i}": ".3e" for i in range(1, 5)}}
    imbalanced = all("val_minority_accuracy" in row for row in rows)
    if imbalanced:
        columns += [("minority_cosine", "minority cos"), ("val_minority_accuracy", "test minority acc")]
        formats.update(minority_cosine=".4f", val_minority_accuracy=".4f")
    table = format_table(rows, columns, formats=formats)
    if imbalanced:
        table += "\n\n" + per_class_accuracy_table(run_dirs, labels)
    notes = [READING_NOTES]
    if any(config.get("classifier") == "etf" for config in configs):
        notes.append(ETF_NOTE)
    parts = [f"# {title}" if title else None, describe_runs(configs), table, *notes]
    path = Path(output_dir) / SUMMARY_TABLE
    write_text(path, "\n\n".join(part for part in parts if part) + "\n")
    return path
