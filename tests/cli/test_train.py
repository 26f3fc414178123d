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
