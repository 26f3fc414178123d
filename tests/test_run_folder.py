"""The run-folder layout."""

import json

import numpy as np

from nc_keras import io_utils, run_folder


def test_paths_name_every_file(tmp_path):
    run = run_folder.RunFolder(tmp_path)
    assert run.config == tmp_path / "config.json"
    assert run.log == tmp_path / "log.csv"
    assert run.summary == tmp_path / "summary.json"
    assert run.checkpoint_pattern.endswith("checkpoints/epoch_{epoch:04d}.keras")
    assert not run.finished
    io_utils.write_json(run.summary, {"epochs": 2})
    assert run.finished
    assert json.loads(run.summary.read_text()) == {"epochs": 2}


def test_nc_history_files_sort_by_epoch(tmp_path):
    for epoch in (10, 2, 1):
        io_utils.save_npz(run_folder.nc_history_file(tmp_path, epoch), x=np.arange(epoch))
    (tmp_path / "other.npz").write_bytes(b"")
    epochs = run_folder.nc_history_epochs(tmp_path)
    assert [epoch for epoch, _ in epochs] == [1, 2, 10]
    assert epochs[2][1].name == "nc_epoch_0010.npz"
    with np.load(epochs[1][1]) as saved:
        np.testing.assert_array_equal(saved["x"], [0, 1])
