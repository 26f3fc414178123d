import json
import subprocess
import sys

import pytest

from nc_keras.cli import main


def test_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "nc_keras.cli", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0
    for command in ("demo", "params"):
        assert command in result.stdout


def test_params_json_reports_the_papers_reductions(capsys):
    assert main(["params", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [round(r["reduction_percent"], 2) for r in rows] == [8.01, 11.76, 20.70, 4.45]
    assert all(r["paper_percent"] == round(r["reduction_percent"], 2) for r in rows)


def test_params_table(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    for text in ("ResNet50", "DenseNet169", "ResNet18", "8.01", "11.76", "20.70", "4.45"):
        assert text in out


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["no-such-command"])
    assert exit.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


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
