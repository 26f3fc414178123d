"""nc_keras.plots: the depth profile from a run's log.csv and NC history."""

import csv
import math

import numpy as np
import pytest

from nc_keras import plots
from nc_keras.cli import main
from nc_keras.run_folder import RunFolder, nc_history_file, save_npz


def write_run(root, layers):
    folder = RunFolder(root)
    folder.root.mkdir()
    columns = ["epoch", "nc1"] + [f"nc1/{name}" for name in layers]
    with open(folder.log, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for epoch in range(3):
            values = [math.nan if epoch == 1 else 10.0 ** (-epoch - i) for i in range(len(columns) - 1)]
            writer.writerow([epoch, *values])
    folder.nc_history.mkdir()
    # The callback saves the measured layers in depth order.
    save_npz(nc_history_file(folder.nc_history, 3), layers=np.array(layers))
    return folder


def test_depth_profile_from_run_folder(tmp_path, capsys):
    layers = ["stage_b", "stage_a"]  # depth order differs from the sorted CSV order
    folder = write_run(tmp_path / "run", layers)
    assert plots._layer_order(folder.root, {}) == layers
    out = plots.plot_depth(folder.root, tmp_path / "depth.png")
    assert out.stat().st_size > 1000
    assert main(["plot", "--layout", "depth", str(folder.root), "-o",
                 str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").exists()
    with pytest.raises(ValueError, match="no nc1/<layer> column for \\['nope'\\]"):
        plots.plot_depth(folder.root, tmp_path / "x.png", layers=["nope"])
    assert main(["plot", "--layout", "depth", str(folder.root), str(folder.root)]) == 2
    assert "draws one run" in capsys.readouterr().err
