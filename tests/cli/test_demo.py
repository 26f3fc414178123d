from nc_keras.cli import main


def test_demo_mnist_part_reruns_into_a_fresh_folder_and_reports_honestly(tmp_path, capsys):
    from nc_keras.callbacks import read_csv_log

    args = ["demo", "--parts", "mnist", "--output-dir", str(tmp_path)]
    # One epoch cannot reach 100% training accuracy: the demo must say so.
    assert main([*args, "--epochs", "1"]) == 1
    assert "FAILED" in capsys.readouterr().out
    # A second run replaces the first one's folder instead of refusing it.
    assert main([*args, "--epochs", "2"]) in (0, 1)
    out = capsys.readouterr().out
    run_dir = tmp_path / "mnist_mlp"
    assert read_csv_log(run_dir / "log.csv")["epoch"] == [0, 1]
    assert (run_dir / "figure.png").stat().st_size > 0
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert "epoch   2/2" in out and "training accuracy" in out
    assert str(run_dir / "figure.png") in out


def test_demo_rejects_unknown_parts(capsys):
    assert main(["demo", "--parts", "ufm,nope"]) == 2
    assert "--parts: unknown ['nope']" in capsys.readouterr().err
