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


def in_flags(message, flags=None):
    """`message` with the argument names it contains spelled as options.

    Library errors name arguments (`data_dir`, `batch_size`); the command
    line user types `--data-dir`, `--batch-size`. `flags`: {name: option}
    (default: every TrainConfig field with an underscore, as `--the-field`).
    Only names with an underscore are replaced: one-word names ("dataset",
    "model", "steps") are also plain words.
    """
    if flags is None:
        import dataclasses

        from nc_keras.train import TrainConfig

        flags = {f.name: "--" + f.name.replace("_", "-")
                 for f in dataclasses.fields(TrainConfig) if "_" in f.name}
    pattern = r"\b(" + "|".join(sorted(flags, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda match: flags[match.group(1)], str(message))


class _DeprecatedOption(argparse.Action):
    """A former option name: does what `replacement` does, with a note on stderr."""

    def __init__(self, option_strings, dest, replacement, value=None, **kwargs):
        self.replacement = replacement
        self.value = value  # what a former flag without a value means, e.g. "none"
        super().__init__(option_strings, dest, nargs=0 if value is not None else None,
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and will be removed in the "
              f"next release; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, self.value if self.value is not None else values)


def add_deprecated_option(parser, old, replacement, dest, value=None, **kwargs):
    """Accepts the former option `old` for one release: it sets `dest` as
    `replacement` would (to `value` for a former flag without a value), prints
    a deprecation note naming `replacement`, and is left out of `--help`."""
    parser.add_argument(old, dest=dest, action=_DeprecatedOption, replacement=replacement,
                        value=value, **kwargs)


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
