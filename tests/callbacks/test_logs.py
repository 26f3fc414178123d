"""read_csv_log and load_history read what the callbacks write."""

import math

import numpy as np
import pytest

from nc_keras.callbacks import load_history, read_csv_log
from nc_keras.io_utils import save_npz
from nc_keras.run_folder import nc_history_file


def test_read_csv_log_parses_numbers_and_missing_cells(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch;loss;note\n0;0.5;NA\n1;;fine\n")
    log = read_csv_log(path, separator=";")
    assert log["epoch"] == [0, 1]
    assert log["loss"][0] == 0.5 and math.isnan(log["loss"][1])
    assert math.isnan(log["note"][0]) and log["note"][1] == "fine"


def test_load_history_stacks_epochs_in_order(tmp_path):
    for epoch in (10, 2, 1):
        save_npz(nc_history_file(tmp_path, epoch), nc1=np.float64(epoch), W=np.full((2, 3), epoch))
    (tmp_path / "notes.txt").write_text("not a measurement")
    history = load_history(tmp_path)
    np.testing.assert_array_equal(history["epoch"], [1, 2, 10])
    np.testing.assert_array_equal(history["nc1"], [1.0, 2.0, 10.0])
    assert history["W"].shape == (3, 2, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no nc_epoch"):
        load_history(tmp_path / "empty")
