import dataclasses

import pytest

from nc_keras import plots, presets
from nc_keras.train import TrainConfig

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


def test_cpu_presets_are_the_committed_evidence_settings():
    # docs/evidence/fixed_etf_cpu and nc_optimizers_cpu ran these exact settings.
    fixed_etf, variants = presets.RECIPES["fixed_etf"].presets["cpu"]
    assert (fixed_etf.dataset, fixed_etf.model, fixed_etf.width, fixed_etf.augment) == (
        "cifar10", "resnet18_adapt", 8, False)
    assert (fixed_etf.samples_per_class, fixed_etf.test_samples_per_class) == (100, 100)
    assert (fixed_etf.epochs, fixed_etf.lr_drop_every, fixed_etf.batch_size) == (60, 24, 32)
    assert len(variants) == 4
    optimizers, variants = presets.RECIPES["nc_optimizers"].presets["cpu"]
    assert (optimizers.dataset, optimizers.samples_per_class, optimizers.epochs) == ("mnist", 100, 30)
    assert [v.get("epochs") for v in variants] == [None, None, 12]
