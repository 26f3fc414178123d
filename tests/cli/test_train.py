import pytest

from nc_keras.cli import main

TINY = [
    "--dataset", "mnist_subset", "--model", "mlp", "--width", "8", "--depth", "1",
    "--samples-per-class", "5", "--test-samples-per-class", "5", "--batch-size", "25",
    "--epochs", "1", "--quiet",
]  # fmt: skip


def test_train_writes_the_run_folder_and_says_where(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY, "--output-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "final epoch: nc1=" in out and f"results in {run_dir}" in out
    for name in ("config.json", "versions.json", "log.csv", "summary.json", "figure.png"):
        assert (run_dir / name).exists(), name
    # A finished run is refused, as one line without a traceback.
    assert main(["train", *TINY, "--output-dir", str(run_dir)]) == 2
    assert "holds a finished run" in capsys.readouterr().err


def test_train_refuses_a_bad_option_value(tmp_path, capsys):
    assert main(["train", *TINY, "--optimizer", "rmsprop", "--output-dir", str(tmp_path)]) == 2
    assert "optimizer must be one of" in capsys.readouterr().err


def test_train_takes_dataset_options_and_random_labels(tmp_path, monkeypatch, capsys):
    import json

    from nc_keras import data

    seen = []

    def spy(name, split="train", *args, **kwargs):  # the real load, its options recorded
        seen.append((name, split, kwargs.get("random_labels"), kwargs.get("num_classes")))
        return load(name, split, *args, **kwargs)

    load = data.load
    monkeypatch.setattr(data, "load", spy)
    run_dir = tmp_path / "run"
    argv = ["train", *TINY, "--dataset", "random_pixels", "--random-labels", "--output-dir", str(run_dir),
            "--dataset-options", "image_shape=(8, 8, 1),num_classes=4,train_size=40,test_size=20"]
    assert main(argv) == 0, capsys.readouterr().err
    assert {(split, random, classes) for _, split, random, classes in seen} == {("train", True, 4), ("test", True, 4)}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["random_labels"] is True
    assert config["dataset_options"] == {"image_shape": [8, 8, 1], "num_classes": 4, "train_size": 40, "test_size": 20}
    # The data as it was: classes, shape, sizes, normalization.
    assert config["data"]["num_classes"] == 4 and config["data"]["input_shape"] == [8, 8, 1]
    assert config["data"]["split_sizes"] == {"train": 40, "test": 20} and config["data"]["mean"] is None
    with pytest.raises(SystemExit) as stop:
        main(["train", *TINY, "--dataset-options", "label", "--output-dir", str(tmp_path / "bad")])
    assert stop.value.code == 2 and "argument --dataset-options" in capsys.readouterr().err
    with pytest.raises(ValueError, match="expected key=value, got 'label'"):
        data.parse_dataset_options("label=coarse,label")
    assert data.parse_dataset_options("label=coarse,image_size=(224, 224)") == {"label": "coarse", "image_size": (224, 224)}
