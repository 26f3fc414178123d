import dataclasses
import json
from pathlib import Path

import pytest

from nc_keras import plots, presets
from nc_keras.train import TrainConfig, variant_folder

FIELDS = {field.name for field in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("name", sorted(presets.RECIPES))
def test_every_recipe_has_a_paper_and_a_smoke_preset_of_valid_variants(name):
    recipe = presets.RECIPES[name]
    # cpu: where offered, the CPU-sized run that reaches the terminal phase.
    assert {"paper", "smoke"} <= set(recipe.presets) <= {"paper", "smoke", "cpu"}
    assert recipe.layout in plots.LAYOUTS
    for base, variants in recipe.presets.values():
        labels = [variant["label"] for variant in variants]
        assert len(set(labels)) == len(labels) > 1
        for variant in variants:
            assert set(variant) <= FIELDS, variant
            dataclasses.replace(base, **variant).resolved()  # passes the checks


def test_paper_presets_keep_the_papers_settings():
    # Sec. 4.1: ResNet18 on CIFAR-10, 200 epochs, lr / 10 every 40, decay 5e-4.
    sec41 = presets.SEC41_PAPER.resolved()
    assert (sec41.dataset, sec41.model, sec41.stem, sec41.augment) == ("cifar10", "resnet18", "imagenet", False)
    assert (sec41.epochs, sec41.lr_drop_every, sec41.weight_decay) == (200, 40, 5e-4)
    # Sec. 4.3: ResNet50 with the 3x3 stem and augmentation, SGD lr 0.05, batch 128.
    fixed_etf = presets.FIXED_ETF_PAPER.resolved()
    assert (fixed_etf.model, fixed_etf.stem, fixed_etf.augment) == ("resnet50", "cifar", True)
    assert (fixed_etf.learning_rate, fixed_etf.batch_size, fixed_etf.epochs) == (0.05, 128, 200)
    # Sec. 4.2: random labels, SGD lr 0.01, batch 64, weight decay 1e-4.
    random = presets.RANDOM_LABELS_PAPER.resolved()
    assert (random.dataset, random.learning_rate, random.batch_size, random.weight_decay) == (
        "cifar10_random", 0.01, 64, 1e-4,
    )  # fmt: skip


# The settings that decide what a run trains and measures (not where it
# writes, nor the machine it ran on).
TRAINING_FIELDS = (
    "dataset", "samples_per_class", "test_samples_per_class", "augment", "model", "width",
    "depth", "classifier", "feature_dim", "optimizer", "learning_rate", "momentum",
    "batch_size", "epochs", "lr_drop_every", "lr_drop_factor", "weight_decay", "decay", "seed",
    "nc_every",
)  # fmt: skip
EVIDENCE = Path(__file__).resolve().parents[1] / "docs" / "evidence"


@pytest.mark.parametrize("name, folder", [("fixed_etf", "fixed_etf_cpu"),
                                          ("nc_optimizers", "nc_optimizers_cpu")])
def test_cpu_presets_are_the_committed_evidence_settings(name, folder):
    # Each variant's config.json in docs/evidence records what that run used.
    base, variants = presets.RECIPES[name].presets["cpu"]
    assert len(variants) == len(list((EVIDENCE / folder).glob("*/config.json")))
    for variant in variants:
        config = dataclasses.asdict(dataclasses.replace(base, **variant).resolved())
        saved = json.loads((variant_folder(EVIDENCE / folder, variant["label"]) / "config.json").read_text())
        assert {k: saved[k] for k in TRAINING_FIELDS} == {k: config[k] for k in TRAINING_FIELDS}, variant
