"""Reading back what the callbacks write: per-epoch CSV logs and NC histories."""

import csv
import math

import numpy as np

from nc_keras.deprecation import renamed_arguments
from nc_keras.run_folder import nc_history_epochs

__all__ = ["load_history", "read_csv_log"]


def read_csv_log(filename, separator=","):
    """Reads a per-epoch CSV log (EpochCSVLogger, CSVLogger) column-wise.

    Returns a dict column -> list; numbers become floats ("epoch" ints),
    empty or "NA" cells NaN. A row with more or fewer cells than the header
    (a torn file) raises `ValueError` naming its line.
    """
    with open(filename, newline="") as handle:
        reader = csv.DictReader(handle, delimiter=separator)
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        # A row cut short has None for its missing cells; one with more
        # cells than the header a None key.
        if None in row or None in row.values():
            cells = sum(value is not None for key, value in row.items() if key is not None)
            cells += len(row.get(None) or ())
            raise ValueError(
                f"{filename} is torn: its line {line} has {cells} of the header's "
                f"{len(reader.fieldnames)} cells (a copy cut short, or a file written by "
                "another program?); restore the file, or delete that line to train its "
                "epoch again on resume")
    columns = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(key, []).append(_parse_number(value))
    if "epoch" in columns:
        columns["epoch"] = [int(value) for value in columns["epoch"]]
    return columns


def _parse_number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan if text in ("", "NA", None) else text


@renamed_arguments(history_path="history_dir")
def load_history(history_dir):
    """Stacks the `nc_epoch_*.npz` files of `NeuralCollapse(history_dir=...)`.

    Returns a dict with "epoch" (1-based epoch numbers, sorted) and every
    saved array stacked along a new first axis.
    """
    files = nc_history_epochs(history_dir)
    if not files:
        raise FileNotFoundError(f"no nc_epoch_*.npz files in {history_dir}")
    stacked = {"epoch": np.array([epoch for epoch, _ in files])}
    loaded = []
    for _, path in files:
        with np.load(path) as npz:
            loaded.append(dict(npz))
    for key in loaded[0]:
        stacked[key] = np.stack([item[key] for item in loaded])
    return stacked
