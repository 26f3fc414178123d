"""Pre-flight: every recipe's paper preset runs end to end, at full size, on real data.

What a GPU run does before its hours of training: the paper's models
(ResNet50 for Fig. 5, ResNet18 for Fig. 3 and the appendix, ResNet18 of
widths 8-64 and MLPs up to 2048 wide for Fig. 4), the real CIFAR-10 (decoded
once into the user's cache, `nc_keras.data.cache_dir()`, as any run does),
one batch of one epoch, NC measured on a balanced subset of 64 samples per
split, and every log, summary and figure written.

All are marked `slow_preflight` (`-m "not slow_preflight"` leaves them out).
CPU time on the 2-core machine (busy, so wall time was 3-5x more): on torch
fixed_etf 3.5 min (four ResNet50), nc_optimizers 6 min (5 of them the
L-BFGS variant's one batch of 2048 images: 20 iterations with a line search
through ResNet18), random_labels 1 min, feature_decay 0.5 min; on JAX
fixed_etf about 7 min (XLA compiles each ResNet50); nc_losses and
minority_collapse train ResNet18 as feature_decay does. To keep `make test`
within its budget, `DEFAULT` runs every recipe on torch but the L-BFGS
batch (the L-BFGS loop is tested at small size in
tests/train/test_lbfgs_fit.py), and on JAX and TensorFlow one ResNet50 of
fixed_etf: the fixed ETF with d = K, the variant that changes most of the
network. `NC_KERAS_PREFLIGHT=all` runs every recipe and variant on the
current backend.
"""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from nc_keras.callbacks import load_history, read_csv_log
from nc_keras.cli.recipe import recipe_main
from nc_keras.presets import RECIPES
from nc_keras.run_folder import RunFolder
from nc_keras.train import variant_folder

RUN_ALL = os.environ.get("NC_KERAS_PREFLIGHT") == "all"
# The default selection: recipe -> backend -> the variants run (None: all).
DEFAULT = {
    "fixed_etf": {"torch": None, "jax": ("fixed ETF d=K",), "tensorflow": ("fixed ETF d=K",)},
    "nc_optimizers": {"torch": ("SGD", "Adam")},
    "random_labels": {"torch": None},
    "feature_decay": {"torch": None},
    "nc_losses": {"torch": None},
    "minority_collapse": {"torch": None},
}
NC_SAMPLES = 64  # 6 per class of CIFAR-10's 10
# Trainable parameters of the full-size models on CIFAR-10 (K = 10) with a
# learned classifier: the paper's ResNet18 count (Sec. 4.3), and ResNet50's
# with the 3x3 stem (the paper's 23,528,522 with the 7x7 one, less 64 x 3 x 40).
FULL_SIZE_PARAMS = {("resnet18", "imagenet"): 11_181_642, ("resnet50", "cifar"): 23_520_842}


def _feature_dim(config):
    """The architecture's own feature dimension, or the one the variant sets."""
    if config.feature_dim:
        return config.feature_dim
    if config.model == "resnet18_adapt":
        return 8 * config.width
    if config.model == "mlp":
        return config.width
    return {"resnet18": 512, "resnet50": 2048}[config.model]


@pytest.mark.slow_preflight
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_paper_preset_runs_end_to_end(name, shared_data, backend, tmp_path, capsys):
    if not RUN_ALL and backend not in DEFAULT[name]:
        pytest.skip(
            f"{name}'s pre-flight runs by default on {', '.join(DEFAULT[name])} only, for "
            "the suite's time budget; NC_KERAS_PREFLIGHT=all runs it on every backend"
        )
    base, variants = RECIPES[name].presets["paper"]
    argv = [
        "--preset", "paper", "--data-dir", str(shared_data), "--max-steps", "1", "--epochs", "1",
        "--nc-max-samples", str(NC_SAMPLES), "--output-dir", str(tmp_path), "--quiet",
    ]  # fmt: skip
    chosen = None if RUN_ALL else DEFAULT[name][backend]
    if chosen:
        variants = [variant for variant in variants if variant["label"] in chosen]
        argv += ["--only", ",".join(chosen)]
    assert recipe_main(name, RECIPES[name].title, argv=argv) == 0

    for variant in variants:
        expected = dataclasses.replace(base, **variant).resolved()
        folder = RunFolder(variant_folder(tmp_path, variant["label"]))
        config = json.loads(folder.config.read_text())
        assert (config["model"], config["stem"], config["width"]) == (
            expected.model, expected.stem, expected.width,
        )  # fmt: skip
        assert (config["max_steps"], config["epochs"], config["batch_size"]) == (1, 1, expected.batch_size)
        assert config["built"]["feature_dim"] == _feature_dim(expected)
        full_size = FULL_SIZE_PARAMS.get((expected.model, expected.stem))
        if full_size and expected.classifier == "learned" and not expected.feature_dim:
            assert config["built"]["trainable_params"] == full_size
        log = read_csv_log(folder.log)
        assert log["epoch"] == [0]
        for key in ("loss", "nc1", "nc3", "nc4", "val_nc1", "nc_accuracy", "val_nc_accuracy"):
            assert math.isfinite(log[key][0]), (variant["label"], key)
        # Every class is in the measured subset, 6 samples each.
        history = load_history(folder.nc_history)
        for split in ("train", "val"):
            np.testing.assert_array_equal(history[f"{split}_counts"][0], np.full(10, NC_SAMPLES // 10))
        for path in (folder.versions, folder.summary, folder.figure, folder.tensorboard):
            assert path.exists(), path
        assert not folder.backup.exists()

    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith(f"# {RECIPES[name].title}: paper preset\n")
    assert "CIFAR-10" in summary and "1 epoch of at most 1 batch" in summary
    assert all(f"| {variant['label']} " in summary for variant in variants)
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    capsys.readouterr()
