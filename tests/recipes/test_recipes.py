import ast
import runpy
import sys
from pathlib import Path

import pytest

from nc_keras.presets import RECIPES

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
SCRIPTS = sorted(RECIPES_DIR.glob("*.py"))


def test_every_recipe_is_found():
    names = {path.stem for path in SCRIPTS}
    assert {"fixed_etf_resnet50", "nc_optimizers", "random_labels", "feature_decay",
            "nc_losses", "minority_collapse"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.stem)
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


def test_every_recipe_script_runs_one_recipe_of_the_presets():
    called = {}
    for path in SCRIPTS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "recipe_main":
                called[path.stem] = node.args[0].value
    assert sorted(called.values()) == sorted(RECIPES)
