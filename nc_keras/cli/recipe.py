"""The command line shared by the recipes in `recipes/`.

A recipe is a description, a figure layout and presets; each preset is a
base `TrainConfig` and a list of variants. `recipe_main` parses the common
options, applies overrides, and calls `nc_keras.train.train_variants`.
"""

import argparse
import dataclasses
import sys


def recipe_main(description, presets, layout, title, argv=None, default_output=None):
    """Runs a recipe from the command line; returns the exit code.

    Args:
        description: the recipe's `--help` text.
        presets: dict preset name -> (TrainConfig, list of variant dicts).
        layout: the figure layout (`nc_keras.plots.LAYOUTS` key).
        title: the figure title.
        argv: arguments (default: sys.argv[1:]).
        default_output: default `--output-dir`.
    """
    from nc_keras.data import DataNotFoundError
    from nc_keras.train import train_variants

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(presets), default="smoke",
                        help="paper: the paper's exact settings (for a GPU); smoke: a few minutes "
                             "on a CPU that still shows the trend (default: smoke)")
    parser.add_argument("--data-dir", help="local data (e.g. ../shared/data); see nc_keras.data")
    parser.add_argument("--output-dir",
                        help=f"where runs, figure.png and summary.md go (default: {default_output}/PRESET)")
    parser.add_argument("--dataset", help="override the preset's dataset (see `nc-keras train --help`)")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--only", help="comma-separated labels of the variants to run (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    base, variants = presets[args.preset]
    changes = {"data_dir": args.data_dir}
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.dataset:
        changes["dataset"] = args.dataset
    base = dataclasses.replace(base, **changes)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {v["label"] for v in variants}
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; choose from "
                         f"{[v['label'] for v in variants]}")
        variants = [v for v in variants if v["label"] in wanted]
    output_dir = args.output_dir or f"{default_output}/{args.preset}"
    try:
        train_variants(base, variants, output_dir, layout=layout, title=title,
                       verbose=0 if args.quiet else "auto")
    except (ValueError, FileExistsError, DataNotFoundError, NotImplementedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
