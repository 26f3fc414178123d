"""EpochCSVLogger: one row per epoch, rows of a resumed run replaced."""

import math

import numpy as np

from nc_keras.callbacks import EpochCSVLogger, read_csv_log


def test_resumed_run_replaces_the_rows_it_repeats(tmp_path):
    path = tmp_path / "log.csv"
    logger = EpochCSVLogger(path)
    for epoch in range(3):  # an attempt interrupted after epoch 2
        logger.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "nc1": np.float32(epoch)})
    resumed = EpochCSVLogger(path)
    for epoch in (1, 2, 3):  # BackupAndRestore resumes at epoch 1
        resumed.on_epoch_end(epoch, {"loss": 10.0 + epoch, "extra": 5.0})
    log = read_csv_log(path)
    assert list(log) == ["epoch", "loss", "nc1"]  # the first epoch's columns
    assert log["epoch"] == [0, 1, 2, 3]
    assert log["loss"] == [1.0, 11.0, 12.0, 13.0]
    assert log["nc1"][0] == 0.0 and all(math.isnan(v) for v in log["nc1"][1:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]  # no temporaries left
