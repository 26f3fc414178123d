"""`nc-keras measure`: NC1-NC4 of a `.keras` model or a directory of per-epoch checkpoints, as CSV."""

import csv
import os
import re
from pathlib import Path

from nc_keras.cli import UserError, add_deprecated_option

_EPOCH = re.compile(r"epoch[_\-=.]?(\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def register(subparsers):
    parser = subparsers.add_parser(
        "measure",
        help="measure NC1-NC4 of saved checkpoints into a CSV table",
        description=(
            "Measure neural collapse (Zhu et al. 2021, Sec. 4: NC1-NC4, NCC "
            "mismatch, accuracy and extras) of one .keras model, or of every "
            ".keras checkpoint in a directory, in epoch order (the number after 'epoch' in the "
            "file name, else its last number; files without one come last), "
            "for runs trained without the NeuralCollapse callback. The "
            "classifier is the layer named 'classifier', else the last layer "
            "with a (d, K) kernel, and the features its input, unless "
            "--classifier and --features name them. The CSV is written through "
            "a temporary file renamed at the end: a failed run leaves an earlier "
            "file untouched and creates none."
        ),
    )
    parser.add_argument("checkpoint_dir", metavar="CHECKPOINTS",
                        help="a .keras file, or a directory of them")
    parser.add_argument(
        "--data", required=True,
        help="an .npz file with arrays x and y, or a dataset name for "
             "nc_keras.data.load (e.g. mnist, cifar10)",
    )
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--data-dir", help="where the dataset's files live")
    parser.add_argument("--samples-per-class", type=int,
                        help="measure on the first N samples of every class")
    parser.add_argument("--max-samples", type=int,
                        help="measure on the first N samples only")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="CSV file to write (default: collapse.csv in CHECKPOINTS, "
                             "or beside the .keras file)")
    parser.add_argument("--ncc", choices=("exact", "none"), default="exact",
                        help="exact: a second pass over the data gives the NCC mismatch "
                             "against the final class means; none: skip it (NaN column) "
                             "(default: exact)")
    add_deprecated_option(parser, "--no-ncc", "--ncc none", "ncc", value="none")
    parser.add_argument("--features", metavar="NAME",
                        help="layer whose output are the features (default: the classifier's input)")
    parser.add_argument("--classifier", metavar="NAME",
                        help="layer with the (d, K) kernel W^T (default: the one named "
                             "'classifier', else the last Dense)")
    parser.add_argument("--layers", metavar="NAMES", type=_names, default=(),
                        help="comma-separated intermediate layers to measure too "
                             "(columns nc1/NAME, ...); found inside nested models")
    parser.add_argument("--pooling", choices=("mean", "flatten"), default="mean",
                        help="how maps of rank > 2 become feature vectors: global average "
                             "pooling (mean) or flatten (default: mean)")
    add_deprecated_option(parser, "--layer-reduction", "--pooling", "pooling",
                          choices=("mean", "flatten"))
    parser.add_argument("--absent-classes", choices=("nan", "skip"), default="nan",
                        help="classes without a sample: NaN for the class-mean metrics "
                             "(default), or measure the classes present (column "
                             "num_classes_present); 'skip' suits vocabularies")
    parser.add_argument("--ood-data", metavar="DATA",
                        help="out-of-distribution data, as --data (an .npz needs only x; "
                             "labels are unused): adds the column nc5, and nc5/NAME for "
                             "--layers (Ammar et al. 2024: the mean |cosine| between the "
                             "class means and the OOD features' mean; one more pass)")
    parser.add_argument("--ood-split", metavar="SPLIT",
                        help="split of a --ood-data dataset name (default: --split)")
    parser.add_argument("--ignore-class", type=int, metavar="LABEL",
                        help="leave out samples with this label (e.g. a padding token); "
                             "sequence models (logits (B, T, K), labels (B, T)) are "
                             "measured at every kept position")
    parser.set_defaults(func=run)


def _names(text):
    return tuple(name.strip() for name in text.split(",") if name.strip())


def epoch_of(path):
    """The epoch number in a checkpoint's file name, or None."""
    stem = Path(path).stem
    match = _EPOCH.search(stem)
    if match:
        return int(match.group(1))
    numbers = _NUMBER.findall(stem)
    return int(numbers[-1]) if numbers else None


def checkpoints(directory):
    """`[path]` for a .keras file; else its .keras files, by epoch (unnumbered last)."""
    directory = Path(directory)
    if directory.is_file() and directory.suffix == ".keras":
        return [directory]
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory or a .keras file")
    files = [p for p in directory.iterdir() if p.suffix == ".keras" and p.is_file()]
    if not files:
        raise UserError(f"no .keras files in {directory}")

    def key(path):
        epoch = epoch_of(path)
        return (epoch is None, epoch or 0, path.name)

    return sorted(files, key=key)


def load_data(args, source=None, split=None, labelled=True):
    """(x, y) arrays from an .npz, or a tf.data.Dataset from nc_keras.data.

    `source` and `split` default to --data and --split; `labelled=False`
    (out-of-distribution data) reads an .npz with x alone as its x.
    """
    source = source or args.data
    split = split or args.split
    if source.endswith(".npz") or os.path.isfile(source):
        if not os.path.isfile(source):
            raise UserError(f"{source}: no such file")
        return _read_npz(source, ("x", "y") if labelled else ("x",))
    try:
        from nc_keras import data
    except ImportError as error:
        raise UserError(f"dataset names need nc_keras.data ({error}); pass an .npz") from error
    expected = (ValueError, getattr(data, "DataNotFoundError", ValueError))
    try:
        return data.load(source, split=split, batch_size=args.batch_size,
                         data_dir=args.data_dir, samples_per_class=args.samples_per_class,
                         shuffle=False)
    except expected as error:
        raise UserError(f"cannot load dataset {source!r}: {error}") from error


def _read_npz(path, keys=("x", "y")):
    """The arrays `keys` of an .npz file, as a tuple (x alone: the array);
    `UserError` for a cut file or object arrays."""
    import numpy as np

    try:
        # allow_pickle=False: an object array is a pickle, which runs code.
        with np.load(path, allow_pickle=False) as npz:
            missing = set(keys) - set(npz.files)
            if missing:
                raise UserError(f"{path} lacks array(s) {sorted(missing)}; it has {npz.files}")
            arrays = {}
            for key in keys:
                try:
                    arrays[key] = npz[key]
                except ValueError as error:
                    if "allow_pickle" not in str(error):
                        raise
                    raise UserError(
                        f"{path}: array {key!r} holds Python objects (dtype object), which "
                        "nc_keras does not load (they would run code); save plain numeric "
                        "arrays x and y") from None
            values = tuple(arrays[key] for key in keys)
            return values if len(values) > 1 else values[0]
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - zipfile, zlib and numpy errors of a cut file
        raise UserError(f"{path} is truncated or corrupt ({type(error).__name__}: {error}); "
                        "write or copy it again") from None


def load_checkpoint(path):
    """The model in the .keras file `path`; `UserError` naming a cut or corrupt file.

    Keras reports a .keras file that is not a whole zip archive as "File not
    found", although it exists: the archive is checked first.
    """
    import zipfile

    import keras

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member, checking its CRC
        if bad is not None:
            raise zipfile.BadZipFile(f"member {bad} fails its checksum")
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise UserError(f"{path} is truncated or corrupt (not a whole .keras zip archive: "
                        f"{error}); copy or save it again") from None
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # keras raises many kinds for a bad file
        raise UserError(f"cannot load {path}: {error}") from error


def run(args):
    import keras

    from nc_keras import collapse
    from nc_keras.io_utils import atomic_writer
    from nc_keras.reporting import format_table

    # `import nc_keras` (done by this package) registered SimplexETF, HalfL2
    # and the other custom objects load_model needs.
    files = checkpoints(args.checkpoint_dir)
    data = load_data(args)
    if isinstance(data, tuple) and args.samples_per_class:
        raise UserError("--samples-per-class applies to dataset names, not .npz files")
    ood_data = None
    if args.ood_data:
        ood_data = load_data(args, args.ood_data, args.ood_split, labelled=False)
    elif args.ood_split:
        raise UserError("--ood-split needs --ood-data")
    output = Path(args.output or files[0].parent / "collapse.csv")
    columns = ["checkpoint", "epoch", "num_samples", *collapse.METRIC_KEYS]
    layer_columns = None  # the layers' names as the first model resolves them
    rows = []
    # Into a temporary file renamed at the end: a failure leaves an earlier
    # output untouched and creates none.
    with atomic_writer(output, "w", newline="") as handle:
        writer = None  # its columns are known after the first measurement
        for path in files:
            model = load_checkpoint(path)
            try:
                result = collapse.measure_model(
                    model, data, batch_size=args.batch_size,
                    max_samples=args.max_samples, ncc=args.ncc,
                    features=args.features, classifier=args.classifier, layers=args.layers,
                    pooling=args.pooling, ignore_class=args.ignore_class,
                    absent_classes=args.absent_classes, ood_data=ood_data)
            except ValueError as error:
                raise UserError(f"{path.name}: {error}") from error
            if layer_columns is None:
                layer_columns = [key for key in result if "/" in key
                                 or key in ("nc5", "num_classes_present")]
                columns += layer_columns
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
            row = {"checkpoint": path.name, "epoch": epoch_of(path), **result}
            row["num_samples"] = int(result["num_samples"])
            writer.writerow({key: row[key] for key in columns})
            handle.flush()  # a long run shows its progress in the temporary file
            rows.append(row)
            # The model is dropped when the next one is loaded; the caller's
            # Keras state (main() runs in-process too) is not reset.
            del model
    print(format_table(rows, columns, formats={"num_samples": "d"}))
    print(f"wrote {output}")
    return 0
