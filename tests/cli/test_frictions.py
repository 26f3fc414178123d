"""New-user frictions of the command line and README: offline errors, stated defaults, help text."""

from pathlib import Path
import csv
import re

import keras
import numpy as np
import pytest

from nc_keras import data, models
from nc_keras.cli import main
from nc_keras.cli.recipe import recipe_main
from nc_keras.data import download
from nc_keras.train import train


README = Path(__file__).resolve().parents[2] / "README.md"


def test_friction_recipe_offline_error_names_the_option_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download, "host_reachable", lambda *args, **kwargs: False)  # offline
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "out"
    argv = ["--dataset", "mnist", "--data-dir", str(empty), "--output-dir", str(out), "--quiet"]
    assert recipe_main("nc_optimizers", "a recipe", argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "--data-dir" in error and "data_dir" not in error
    assert not out.exists()


def test_friction_default_output_dir_is_stated(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "where results are written (default: runs/run)" in " ".join(capsys.readouterr().out.split())
    assert "default `runs/run`" in README.read_text()


def test_friction_measure_accepts_one_keras_file(tmp_path, capsys):
    model = models.mlp(width=16, depth=1, num_classes=3, input_shape=(4, 4, 1))
    model.save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((30, 4, 4, 1)).astype("float32"),
             y=np.arange(30) % 3)
    assert main(["measure", str(tmp_path / "model.keras"), "--data", str(tmp_path / "data.npz")]) == 0
    with open(tmp_path / "collapse.csv", newline="") as handle:
        assert [row["checkpoint"] for row in csv.DictReader(handle)] == ["model.keras"]


@pytest.mark.parametrize("command", ["demo", "params"])
def test_friction_help_shows_single_percent_signs(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and "%" in text


def test_friction_demo_duration_in_help_and_readme_agree(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    in_help = re.search(r"about (\d+) minutes? on a 2-core CPU", capsys.readouterr().out)
    in_readme = re.search(r"`nc-keras demo`, about (\d+) minutes? on a 2-core CPU", README.read_text())
    assert in_help and in_readme and in_help.group(1) == in_readme.group(1)
