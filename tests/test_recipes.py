import ast
import runpy
import sys
from pathlib import Path

import pytest

from nc_keras.callbacks import read_csv_log
from nc_keras.cli.recipe import recipe_main
from nc_keras.train import TrainConfig

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.py"))

TINY = TrainConfig(
    dataset="mnist_subset", model="mlp", width=16, depth=1, samples_per_class=5,
    test_samples_per_class=5, batch_size=25, epochs=2, lr_drop_every=0,
)  # fmt: skip
VARIANTS = [
    {"label": "learned"},
    {"label": "fixed ETF", "classifier": "etf"},
]


def test_every_recipe_is_found():
    names = {path.stem for path in RECIPES}
    assert {"fixed_etf_resnet50", "nc_optimizers", "random_labels", "feature_decay"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_recipe_help_describes_it(path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(path), run_name="__main__")
    assert exit.value.code == 0
    out = capsys.readouterr().out
    summary = ast.get_docstring(ast.parse(path.read_text())).splitlines()[0]
    assert out.startswith("usage:")
    # The module docstring is the --help text: its first line must show.
    assert " ".join(summary.split()[:4]) in " ".join(out.split())


def test_recipe_main_trains_every_variant_then_skips_finished_ones(tmp_path, capsys):
    presets = {"smoke": (TINY, VARIANTS)}
    argv = ["--output-dir", str(tmp_path), "--quiet"]
    assert recipe_main("tiny", presets, "fig5", "tiny", argv=argv) == 0
    for folder in ("learned", "fixed_ETF"):
        log = read_csv_log(tmp_path / folder / "log.csv")
        assert log["epoch"] == [0, 1]
        assert (tmp_path / folder / "summary.json").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "| learned " in summary and "| fixed ETF " in summary
    assert (tmp_path / "figure.png").stat().st_size > 0
    capsys.readouterr()

    # A second call keeps the finished runs instead of training them again.
    assert recipe_main("tiny", presets, "fig5", "tiny", argv=argv) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
    assert read_csv_log(tmp_path / "learned" / "log.csv")["epoch"] == [0, 1]


def test_recipe_main_overrides_and_default_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    presets = {"smoke": (TINY, VARIANTS)}
    argv = ["--only", "fixed ETF", "--epochs", "1", "--quiet"]
    assert recipe_main("tiny", presets, "fig5", "tiny", argv=argv, default_output="runs/tiny") == 0
    run_dir = tmp_path / "runs" / "tiny" / "smoke" / "fixed_ETF"
    assert read_csv_log(run_dir / "log.csv")["epoch"] == [0]
    assert not (tmp_path / "runs" / "tiny" / "smoke" / "learned").exists()


def test_recipe_main_rejects_unknown_variants(capsys):
    with pytest.raises(SystemExit) as exit:
        recipe_main("tiny", {"smoke": (TINY, VARIANTS)}, "fig5", "tiny", argv=["--only", "nope"])
    assert exit.value.code == 2
    assert "unknown variants ['nope']" in capsys.readouterr().err
