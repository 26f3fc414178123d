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
    `output_dir/summary.md` tabulates their last epochs.

    Returns:
        A list of (label, history) pairs.
    """
    from nc_keras import plots
    from nc_keras.callbacks import read_csv_log
    from nc_keras.reporting import format_table

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
    rows = [dict(summarize(history), label=label) for label, history in results]
    table = format_table(
        rows,
        ["label", ("epochs_completed", "epochs"), ("nc_accuracy", "train acc"),
         ("val_nc_accuracy", "test acc"), "nc1", "nc2", "nc3", "nc4"],
        formats={"nc_accuracy": ".4f", "val_nc_accuracy": ".4f",
                 **{f"nc{i}": ".3e" for i in range(1, 5)}},
    )  # fmt: skip
    write_text(output_dir / SUMMARY_TABLE, table + "\n")
    print(table)
    print(f"figure: {figure}")
    return results
