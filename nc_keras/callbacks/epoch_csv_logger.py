"""The `EpochCSVLogger` callback: one CSV row per epoch, safe across resumed runs."""

import csv
import os

import keras

from nc_keras.io_utils import atomic_writer

__all__ = ["EpochCSVLogger"]


class EpochCSVLogger(keras.callbacks.Callback):
    """Writes one CSV row per epoch, exactly once, even across resumed runs.

    Like `keras.callbacks.CSVLogger`, but safe with
    `keras.callbacks.BackupAndRestore`: when a run resumes at epoch e, the
    rows of epochs >= e that an interrupted attempt wrote are replaced, so
    the file never holds an epoch twice nor loses one. Columns are `epoch`
    (0-based, as CSVLogger) and the sorted keys of the first epoch's `logs`
    (a `NeuralCollapse` in the same `fit` runs first wherever it stands, so
    its keys are there from the first epoch). Each epoch rewrites the file through a temporary file
    and an atomic rename, so an interruption never leaves a torn file.
    Read it back with `nc_keras.callbacks.read_csv_log`.

    Args:
        filename: path of the CSV file.
        separator: the field separator. Defaults to ",".
    """

    def __init__(self, filename, separator=","):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        rows, columns = [], None
        if os.path.exists(self.filename):
            with open(self.filename, newline="") as handle:
                reader = csv.DictReader(handle, delimiter=self.separator)
                columns = reader.fieldnames
                rows = [row for row in reader if int(row["epoch"]) < epoch]
        if not columns:
            columns = ["epoch"] + sorted(logs)
        rows.append({"epoch": epoch, **{key: _csv_value(logs.get(key)) for key in columns[1:]}})
        with atomic_writer(self.filename, "w", newline="") as handle:
            writer = csv.DictWriter(
                handle, fieldnames=columns, delimiter=self.separator, extrasaction="ignore"
            )
            writer.writeheader()
            writer.writerows(rows)


def _csv_value(value):
    if value is None:
        return "NA"
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return value
