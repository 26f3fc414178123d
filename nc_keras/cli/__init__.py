"""The `nc-keras` command line.

Each subcommand lives in its own module of this package and exposes
`register(subparsers)`, which adds its parser and sets `func` (called with the
parsed arguments; it returns an exit code). Library work happens elsewhere:
these modules only parse arguments, call into `nc_keras`, and print.
"""

import argparse
import importlib
import re
import sys

# Subcommand modules, in the order `--help` lists them.
SUBCOMMANDS = ("demo", "train", "plot", "measure", "ufm", "params")


class UserError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


def in_flags(message):
    """`message` with the TrainConfig fields it names spelled as options.

    Library errors name fields (`data_dir`, `batch_size`); the command line
    user types `--data-dir`, `--batch-size`. Only names with an underscore
    are replaced: one-word fields ("dataset", "model") are also plain words.
    """
    import dataclasses

    from nc_keras.train import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig) if "_" in f.name]
    pattern = r"\b(" + "|".join(names) + r")\b"
    return re.sub(pattern, lambda match: "--" + match.group(1).replace("_", "-"), str(message))


def write_failure(error, folder):
    """One line for an `OSError` while a run writes `folder`: what failed, what was kept.

    A full disk (or quota, or a folder made read-only) stops a run at any
    write; what a rerun resumes from is the backup of the last finished epoch.
    """
    from pathlib import Path

    from nc_keras.run_folder import CONFIG, RunFolder
    from nc_keras.train import resume

    where = error.filename or folder
    # The run whose file failed (a recipe's variant), if the path names one.
    runs = [p for p in Path(where).parents if (p / CONFIG).is_file()] if error.filename else []
    folder = runs[0] if runs else folder
    reason = error.strerror or str(error)
    try:
        done = resume.resume_epoch(RunFolder(folder))
    except Exception:  # noqa: BLE001 - a torn backup: the rerun says so
        done = 0
    kept = (f"its first {done} epoch(s), which rerunning the same command resumes after"
            if done else "no finished epoch: rerunning the same command starts it over")
    return f"cannot write {where}: {reason}. {folder} keeps {kept} (free space first)."


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nc-keras",
        description=(
            "Neural collapse with Keras 3 (Zhu et al., NeurIPS 2021): measure "
            "NC1-NC4, study the unconstrained feature model, train with a "
            "fixed Simplex-ETF classifier. Set KERAS_BACKEND to tensorflow, "
            "jax or torch to choose the backend."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UserError as error:
        print(f"nc-keras {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nc-keras {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
