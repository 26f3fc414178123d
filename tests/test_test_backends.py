"""scripts/test_backends.py (what `make test` runs): backends side by side, each logged,
the exit status failing when any backend fails."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "test_backends.py"


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("test_backends", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backends_start_longest_first_and_pytest_gets_the_rest(runner):
    args, order, pytest_args = runner.parse_args(
        ["--backends", "torch tensorflow jax", "--", "-k", "etf and not slow", "-x"])
    assert order == ["jax", "tensorflow", "torch"]
    assert pytest_args == ["-k", "etf and not slow", "-x"]
    assert args.jobs == 2 and args.tests == "tests"


@pytest.mark.parametrize("argv", [["--backends", "numpy"], ["--backends", ""], ["--jobs", "0"]])
def test_bad_options_are_refused_by_name(runner, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        runner.parse_args(argv)
    assert stop.value.code == 2
    assert argv[0] in capsys.readouterr().err


def _write_tests(folder, body):
    folder.mkdir()
    (folder / "test_probe.py").write_text(
        "import os\n\n\ndef test_backend_is_set():\n"
        f"    backend = os.environ['KERAS_BACKEND']\n    {body}\n")
    return folder


def test_every_backend_runs_and_a_failure_fails_the_whole(runner, tmp_path, capsys, backend):
    if backend != "torch":
        pytest.skip("the runner does not depend on the backend of this pass; the torch pass runs it")
    passing = _write_tests(tmp_path / "passing", "assert backend in ('jax', 'torch')")
    argv = ["--backends", "torch jax", "--jobs", "2", "--log-dir", str(tmp_path / "logs"),
            "--tests", str(passing), "--", "-p", "no:cacheprovider"]
    assert runner.main(argv) == 0
    out = capsys.readouterr().out
    assert "all backends passed: jax torch" in out
    for backend in ("jax", "torch"):
        log = (tmp_path / "logs" / f"{backend}.log").read_text()
        assert "1 passed" in log and log in out  # each log printed whole

    failing = _write_tests(tmp_path / "failing", "assert backend != 'torch'")
    argv[argv.index(str(passing))] = str(failing)
    assert runner.main(argv) == 1
    out = capsys.readouterr().out
    assert "KERAS_BACKEND=torch: FAILED" in out and "KERAS_BACKEND=jax: passed" in out
    assert "FAILED on: torch" in out
