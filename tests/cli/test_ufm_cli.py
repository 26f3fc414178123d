"""`nc-keras ufm`: progress, final table, figure, help and user errors."""

import pytest

from nc_keras.cli import build_parser, main


def test_ufm_prints_progress_table_and_saves_figure(tmp_path, capsys):
    figure = tmp_path / "out" / "ufm.png"
    code = main(
        ["ufm", "--num-classes", "4", "--feature-dim", "5", "--samples-per-class", "10", "--method", "gd",
         "--print-every", "5", "-o", str(figure)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "f* = 0.243001" in out
    assert out.count("iter ") >= 3  # progress lines while it runs
    for column in ("f - f*", "(f-f*)/f*", "nc1", "nc2", "nc3", "nc4", "min Hessian eig"):
        assert column in out
    row = next(line for line in out.splitlines() if line.startswith("| gd"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert abs(float(cells[2])) <= 1e-8 and float(cells[7]) >= -1e-8
    assert f"figure: {figure.resolve()}" in out and figure.stat().st_size > 1000
    assert "9 zero eigenvalues" in out


def test_ufm_help_names_every_option_with_its_default():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    text = subparsers.choices["ufm"].format_help()
    for option in ("--num-classes", "--feature-dim", "--samples-per-class", "--lambda-w",
                   "--lambda-h", "--lambda-b", "--method", "--seed", "--init-scale", "--steps",
                   "--learning-rate", "--batch-size", "--gradient-tolerance", "--no-polish",
                   "--print-every", "--hessian-k", "-o FILE, --output FILE"):
        assert option in text
    for former in ("--classes", "--dim ", "--per-class", "--lr "):  # accepted, not shown
        assert former not in text
    assert text.count("default") >= 15


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--num-classes", "10", "--feature-dim", "5"], "--feature-dim must be at least"),
        (["--num-classes", "1"], "--num-classes must be an integer >= 2; got 1"),
        (["--samples-per-class", "0"], "--samples-per-class must be an integer >= 1; got 0"),
        (["--lambda-w", "0"], "needs --lambda-w > 0, --lambda-h > 0"),
        (["--batch-size", "100000"], "--batch-size must be at most N = 300"),
        (["--steps", "0"], "steps must be an integer >= 1; got 0"),
    ],
)
def test_ufm_user_errors_are_one_line(arguments, message, capsys):
    assert main(["ufm", *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_small_ufm_command_refuses_learning_rate_with_gd(capsys):
    assert main(["ufm", "--method", "gd", "--learning-rate", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nc-keras ufm: error: --learning-rate applies to methods sgd and adam; "
                          "gd finds its steps by a line search") and err.count("\n") == 1, err
