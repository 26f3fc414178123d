"""TrainConfig and `nc-keras train` refuse bad settings before writing anything."""

import math
import os

import keras
import pytest

from nc_keras.cli import main
from nc_keras.train import TrainConfig, train


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("learning_rate", -0.1, "learning_rate must be > 0"),
        ("weight_decay", -5e-4, "weight_decay must be >= 0"),
        ("lr_drop_factor", 0.0, "lr_drop_factor must be > 0"),
        ("lr_drop_factor", -0.1, "lr_drop_factor must be > 0"),
        ("learning_rate", math.nan, "learning_rate must be a finite number"),
        ("weight_decay", math.inf, "weight_decay must be a finite number"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("samples_per_class", 0, "samples_per_class must be >= 1"),
    ],
)
def test_config_resolved_rejects_bad_numbers(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value}).resolved()


@pytest.mark.parametrize(
    "option, value",
    [("--batch-size", "0"), ("--learning-rate", "-0.05"), ("--weight-decay", "-1"),
     ("--lr-drop-factor", "0"), ("--weight-decay", "nan")],
)  # fmt: skip
def test_config_train_command_refuses_before_writing(tmp_path, capsys, option, value):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "mnist_subset", "--model", "mlp", "--width", "16",
            "--epochs", "1", "--quiet", "--output-dir", str(out), option, value]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("nc-keras train: error: ") and option in error
    assert not out.exists()


def test_config_output_path_must_be_a_writable_folder(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    targets = [a_file, a_file / "run"]
    if os.geteuid() != 0:  # root writes anywhere
        read_only = tmp_path / "read_only"
        read_only.mkdir(mode=0o555)
        targets.append(read_only / "run")
    for target in targets:
        argv = ["train", "--dataset", "mnist_subset", "--model", "mlp", "--epochs", "1",
                "--quiet", "--output-dir", str(target)]  # fmt: skip
        assert main(argv) == 2, target
        assert "error: output directory" in capsys.readouterr().err
        assert target == a_file or not target.exists()
    assert a_file.read_text() == "not a folder"
