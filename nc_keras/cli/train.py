"""`nc-keras train`: one training run from the command line."""

import dataclasses
import sys
import types
import typing


def register(subparsers):
    from nc_keras.train import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train one network with live NC metrics (Sec. 4)",
        description=(
            "Train one network with the NeuralCollapse callback, writing "
            "log.csv, TensorBoard logs, per-epoch NC history, config.json, "
            "versions.json, summary.json and figure.png into --output-dir. "
            "Running the same command again after an interruption resumes "
            "at the last finished epoch (the same options only); a second run "
            "into a folder another live run writes is refused. Exits with "
            "status 2 on bad options, 1 if training diverged (NaN loss). "
            "Defaults are the paper's settings "
            "(Sec. 4.1): 200 epochs, lr divided by 10 every 40 epochs, "
            "weight decay 5e-4 on all parameters."
        ),
    )
    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_config_arguments(parser, config_class):
    """One `--option` per dataclass field, typed, with its help and default."""
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        base = _base_type(field.type)
        if base is bool:
            parser.add_argument(flag, action="store_true", default=field.default, help=help_text)
        else:
            parser.add_argument(
                flag,
                # A field may name its own parser (e.g. a comma-separated list).
                type=field.metadata.get("parse", base),
                default=field.default,
                metavar=field.name.upper(),
                help=f"{help_text} (default: {field.default})",
            )


def _base_type(annotation):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def config_from_args(args, config_class):
    return config_class(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)}
    )


def run(args):
    from nc_keras.cli import UserError, in_flags, write_failure
    from nc_keras.data import DataNotFoundError
    from nc_keras.train import RunFolderLocked, TrainConfig, TrainingDiverged, run_directory, train

    config = config_from_args(args, TrainConfig)
    try:
        history = train(config, verbose=0 if args.quiet else "auto")
    except (ValueError, FileExistsError, DataNotFoundError, NotImplementedError,
            RunFolderLocked) as error:
        raise UserError(in_flags(error)) from error
    except OSError as error:  # a full disk, a folder made read-only
        raise UserError(write_failure(error, run_directory(config))) from error
    except TrainingDiverged as error:  # the run's outcome, not a usage error
        print(f"nc-keras train: {in_flags(error)}", file=sys.stderr)
        return 1
    keys = ("nc1", "nc2", "nc3", "nc4", "nc_accuracy", "val_nc_accuracy")
    last = {key: history[key][-1] for key in keys if history.get(key)}
    print("final epoch: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items()))
    print(f"results in {run_directory(config)}")
    return 0
