import json

import pytest

from nc_keras.callbacks import read_csv_log
from nc_keras.cli.recipe import recipe_main
from nc_keras.presets import Recipe
from nc_keras.train import TrainConfig

TINY = TrainConfig(
    dataset="mnist_subset", model="mlp", width=16, depth=1, samples_per_class=5,
    test_samples_per_class=5, batch_size=25, epochs=2, lr_drop_every=0,
)  # fmt: skip
VARIANTS = (
    {"label": "learned"},
    {"label": "fixed ETF", "classifier": "etf"},
)
RECIPE = Recipe(presets={"smoke": (TINY, VARIANTS)}, layout="fig5", title="tiny", output_dir="runs/tiny")


def test_recipe_main_trains_every_variant_then_skips_finished_ones(tmp_path, capsys):
    argv = ["--output-dir", str(tmp_path), "--quiet"]
    assert recipe_main(RECIPE, "tiny", argv=argv) == 0
    for folder in ("learned", "fixed_ETF"):
        log = read_csv_log(tmp_path / folder / "log.csv")
        assert log["epoch"] == [0, 1]
        assert (tmp_path / folder / "summary.json").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "| learned " in summary and "| fixed ETF " in summary
    # What the runs are, and how to read the table.
    assert summary.startswith("# tiny: smoke preset\n\nMLP 1 x 16, d = 16; MNIST subset (shipped), 5 train")
    assert "Lower NC1-NC4 means more collapse" in summary
    assert "NC2 of a fixed simplex-ETF classifier is zero by construction" in summary
    assert (tmp_path / "figure.png").stat().st_size > 0
    capsys.readouterr()

    # A second call keeps the finished runs instead of training them again.
    assert recipe_main(RECIPE, "tiny", argv=argv) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
    assert read_csv_log(tmp_path / "learned" / "log.csv")["epoch"] == [0, 1]


def test_recipe_main_overrides_and_default_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--only", "fixed ETF", "--epochs", "1", "--quiet"]
    assert recipe_main(RECIPE, "tiny", argv=argv) == 0
    run_dir = tmp_path / "runs" / "tiny" / "smoke" / "fixed_ETF"
    assert read_csv_log(run_dir / "log.csv")["epoch"] == [0]
    assert not (tmp_path / "runs" / "tiny" / "smoke" / "learned").exists()


def test_recipe_main_passes_the_preflight_options(tmp_path):
    argv = ["--output-dir", str(tmp_path), "--only", "learned", "--max-steps", "1",
            "--nc-max-samples", "20", "--quiet"]  # fmt: skip
    assert recipe_main(RECIPE, "tiny", argv=argv) == 0
    config = json.loads((tmp_path / "learned" / "config.json").read_text())
    assert (config["max_steps"], config["nc_max_samples"], config["epochs"]) == (1, 20, 2)
    summary = (tmp_path / "summary.md").read_text()
    assert "2 epochs of at most 1 batch" in summary
    assert "NC2 of a fixed simplex-ETF" not in summary  # no fixed ETF among these runs


def test_recipe_main_rejects_unknown_variants(capsys):
    with pytest.raises(SystemExit) as exit:
        recipe_main(RECIPE, "tiny", argv=["--only", "nope"])
    assert exit.value.code == 2
    assert "unknown variants ['nope']" in capsys.readouterr().err


def test_recipe_main_runs_a_named_recipe_of_the_presets(capsys):
    with pytest.raises(SystemExit) as exit:
        recipe_main("fixed_etf", "the fixed ETF recipe", argv=["--help"])
    assert exit.value.code == 0
    assert "runs/fixed_etf/PRESET" in capsys.readouterr().out


def test_recipe_main_takes_any_dataset_its_options_and_random_labels(tmp_path):
    argv = ["--output-dir", str(tmp_path), "--only", "learned", "--epochs", "1", "--quiet",
            "--dataset", "random_pixels", "--random-labels",
            "--dataset-options", "image_shape=(4, 4, 1),num_classes=3,train_size=30,test_size=15"]  # fmt: skip
    assert recipe_main(RECIPE, "tiny", argv=argv) == 0
    config = json.loads((tmp_path / "learned" / "config.json").read_text())
    assert (config["dataset"], config["random_labels"]) == ("random_pixels", True)
    assert config["data"]["num_classes"] == 3 and config["data"]["input_shape"] == [4, 4, 1]
