"""The nc_losses and minority_collapse recipes, their smoke presets shrunk to seconds."""

import dataclasses

import pytest

from nc_keras import presets
from nc_keras.callbacks import read_csv_log
from nc_keras.cli.recipe import recipe_main
from nc_keras.train import minority_classes

# Each smoke preset on the bundled MNIST subset, tiny: the variants, the
# figure and summary.md are those of the real preset.
TINY = dict(dataset="mnist_subset", model="mlp", width=16, depth=1, test_samples_per_class=5,
            batch_size=25, epochs=1)  # fmt: skip


def shrunk(name, **changes):
    recipe = presets.RECIPES[name]
    base, variants = recipe.presets["smoke"]
    return dataclasses.replace(
        recipe, presets={"smoke": (dataclasses.replace(base, **{**TINY, **changes}), variants)}
    )


def test_nc_losses_smoke_runs_every_loss(tmp_path):
    recipe = shrunk("nc_losses", samples_per_class=5)
    assert recipe_main(recipe, "losses", argv=["--output-dir", str(tmp_path), "--quiet"]) == 0
    summary = (tmp_path / "summary.md").read_text()
    for variant in recipe.presets["smoke"][1]:
        assert f"| {variant['label']} " in summary
    assert {v["loss"] for v in recipe.presets["smoke"][1]} == {"ce", "mse", "label_smoothing", "focal"}
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_minority_collapse_smoke_reports_minority_metrics(tmp_path):
    recipe = shrunk("minority_collapse", samples_per_class=[6] * 5 + [2] * 5)
    assert recipe_main(recipe, "minority", argv=["--output-dir", str(tmp_path), "--quiet"]) == 0
    log = read_csv_log(tmp_path / "fixed_ETF" / "log.csv")
    # A fixed simplex ETF: every pair of classifier rows at cosine -1/(K-1).
    assert log["minority_cosine"][-1] == pytest.approx(-1 / 9, abs=1e-5)
    summary = (tmp_path / "summary.md").read_text()
    assert "minority cos" in summary and "Per-class test accuracy" in summary
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_minority_presets_are_the_step_imbalance_of_fang_et_al():
    recipe = presets.RECIPES["minority_collapse"]
    paper, smoke = recipe.presets["paper"][0], recipe.presets["smoke"][0]
    assert paper.samples_per_class == [5000] * 5 + [50] * 5  # R = 100
    assert (paper.dataset, paper.model) == ("cifar10", "resnet18")
    assert minority_classes(paper, 10) == minority_classes(smoke, 10) == [5, 6, 7, 8, 9]
    assert presets.RECIPES["nc_losses"].presets["paper"][0] == presets.SEC41_PAPER
