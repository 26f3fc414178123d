"""The command line shared by the recipes in `recipes/`.

A recipe is a description and a `nc_keras.presets.Recipe` (presets of a base
`TrainConfig` and its variants, the figure's layout and title, the default
output folder). `recipe_main` parses the common options, applies overrides,
and calls `nc_keras.train.train_variants`.
"""

import argparse
import dataclasses
import sys


def recipe_main(recipe, description, argv=None):
    """Runs a recipe from the command line; returns the exit code.

    Args:
        recipe: a name in `nc_keras.presets.RECIPES`, or a
            `nc_keras.presets.Recipe`.
        description: the recipe's `--help` text.
        argv: arguments (default: sys.argv[1:]).
    """
    from nc_keras import presets
    from nc_keras.cli import in_flags, write_failure
    from nc_keras.data import DataNotFoundError, parse_dataset_options
    from nc_keras.train import RunFolderLocked, TrainingDiverged, train_variants

    if isinstance(recipe, str):
        recipe = presets.RECIPES[recipe]
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(recipe.presets), default="smoke",
                        help="paper: the paper's exact settings (for a GPU); smoke: a few minutes "
                             "on a CPU that still shows the trend; cpu (where offered): reaches "
                             "100%% training accuracy on a 2-core CPU in about 10-15 minutes "
                             "(default: smoke)")
    parser.add_argument("--data-dir", help="local data: a folder holding MNIST IDX files, a CIFAR-10 archive or class-folder tree, or tfds data (see nc_keras.data)")
    parser.add_argument("--output-dir",
                        help=f"where runs, figure.png and summary.md go (default: {recipe.output_dir}/PRESET)")
    parser.add_argument("--dataset", help="override the preset's dataset: any of `nc-keras train --help`'s, "
                                          "or tfds:<name>")
    parser.add_argument("--dataset-options", type=parse_dataset_options, metavar="KEY=VALUE,...",
                        help="the dataset's options, e.g. label=coarse (cifar100) or image_size=(224,224)")
    parser.add_argument("--random-labels", action="store_true",
                        help="replace every label by a seeded, balanced random assignment")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--max-steps", type=int, metavar="N",
                        help="train on at most N batches per epoch (the data is not repeated); "
                             "with --epochs 1 and --nc-max-samples, a pre-flight check of the "
                             "paper preset's full-size models and real data in minutes")
    parser.add_argument("--nc-max-samples", type=int, metavar="N",
                        help="measure NC on a balanced subset of N samples of each split "
                             "(N // K per class; default: all)")
    parser.add_argument("--only", help="comma-separated labels of the variants to run (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    base, variants = recipe.presets[args.preset]
    overrides = {"epochs": args.epochs, "dataset": args.dataset, "max_steps": args.max_steps,
                 "nc_max_samples": args.nc_max_samples, "dataset_options": args.dataset_options,
                 "random_labels": args.random_labels or None}
    changes = {"data_dir": args.data_dir}
    changes.update({name: value for name, value in overrides.items() if value is not None})
    base = dataclasses.replace(base, **changes)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {v["label"] for v in variants}
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; choose from "
                         f"{[v['label'] for v in variants]}")
        variants = [v for v in variants if v["label"] in wanted]
    output_dir = args.output_dir or f"{recipe.output_dir}/{args.preset}"
    try:
        train_variants(base, variants, output_dir, layout=recipe.layout,
                       title=f"{recipe.title}: {args.preset} preset",
                       verbose=0 if args.quiet else "auto")
    except (ValueError, FileExistsError, DataNotFoundError, NotImplementedError,
            RunFolderLocked) as error:
        print(f"error: {in_flags(error)}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {in_flags(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, a folder made read-only
        print(f"error: {write_failure(error, output_dir)}", file=sys.stderr)
        return 2
    return 0
