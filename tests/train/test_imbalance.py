"""Class-imbalanced training: the subset, the minority classes and their metrics."""

import json
import math

import numpy as np

from nc_keras import data
from nc_keras.callbacks import read_csv_log
from nc_keras.cli import main
from nc_keras.train import TrainConfig, minority_classes, train


def test_minority_classes_of_a_configuration():
    assert minority_classes(TrainConfig(samples_per_class=5), 10) is None
    assert minority_classes(TrainConfig(), 10) is None
    assert minority_classes(TrainConfig(samples_per_class=[5, 5, 2, 5, 1]), 5) == [2, 4]
    assert minority_classes(TrainConfig(imbalance_ratio=10), 10) == [5, 6, 7, 8, 9]


def test_imbalanced_run_logs_minority_metrics(tmp_path, small_config):
    config = small_config(samples_per_class=20, imbalance_ratio=10, epochs=2)
    history = train(config, verbose=0)
    log = read_csv_log(tmp_path / "run" / "log.csv")
    for key in ("minority_accuracy", "minority_cosine", "val_minority_accuracy"):
        assert len(log[key]) == 2 and all(math.isfinite(v) for v in log[key]), key
    # The classifier alone: logged once, not repeated for the test set.
    assert "val_minority_cosine" not in log and history["minority_cosine"] == log["minority_cosine"]
    saved = np.load(tmp_path / "run" / "nc_history" / "nc_epoch_0002.npz")
    assert saved["train_counts"].tolist() == data.long_tailed_counts(20, 10, 10)
    assert saved["val_counts"].tolist() == [10] * 10  # the test set stays balanced
    assert json.loads((tmp_path / "run" / "config.json").read_text())["imbalance_ratio"] == 10


def test_balanced_run_keeps_the_default_columns(tmp_path, small_config):
    train(small_config(epochs=1), verbose=0)
    assert "minority_cosine" not in read_csv_log(tmp_path / "run" / "log.csv")


def test_command_line_takes_a_list_of_counts_and_a_loss(tmp_path, capsys):
    counts = "5,5,5,5,5,2,2,2,2,2"
    argv = [
        "train", "--dataset", "mnist_subset", "--model", "mlp", "--width", "8", "--depth", "1",
        "--samples-per-class", counts, "--test-samples-per-class", "5", "--batch-size", "25",
        "--epochs", "1", "--loss", "focal", "--focal-gamma", "1", "--quiet",
        "--output-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    assert main(argv) == 0
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert written["samples_per_class"] == [int(n) for n in counts.split(",")]
    assert (written["loss"], written["focal_gamma"]) == ("focal", 1.0)
    assert "minority_accuracy" in read_csv_log(tmp_path / "run" / "log.csv")
    capsys.readouterr()
