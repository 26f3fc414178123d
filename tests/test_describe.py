"""The text that says what a figure's or a summary's runs are."""

import dataclasses

from nc_keras import presets
from nc_keras.describe import describe_runs


def _configs(name, preset, **changes):
    base, variants = presets.RECIPES[name].presets[preset]
    return [
        dataclasses.asdict(dataclasses.replace(base, **variant, **changes).resolved())
        for variant in variants
    ]


def test_smoke_and_paper_presets_read_differently():
    smoke = describe_runs(_configs("fixed_etf", "smoke"))
    assert smoke.startswith("ResNet18 width 8 (CIFAR stem)")
    assert "CIFAR-10, 100 train / 50 test images per class, augmented" in smoke
    assert "6 epochs; SGD, lr 0.05, batch 32, weight decay 0.0005" in smoke
    paper = describe_runs(_configs("fixed_etf", "paper"))
    assert paper.startswith("ResNet50 (CIFAR stem)")
    assert "full train and test sets" in paper and "200 epochs" in paper


def test_settings_that_differ_are_left_to_the_legend():
    optimizers = describe_runs(_configs("nc_optimizers", "paper"))
    assert optimizers.startswith("ResNet18 (ImageNet stem)")
    assert optimizers.endswith("200 epochs; optimizer per legend")
    widths = describe_runs(_configs("random_labels", "paper"))
    assert widths.startswith(
        "ResNet18 (CIFAR stem) and MLP of depth 4, widths per legend; CIFAR-10 with random labels"
    )
    assert describe_runs(_configs("random_labels", "smoke")).startswith(
        "MLP of depth 3, widths per legend; CIFAR-10"
    )


def test_preflight_options_and_the_built_feature_dimension_are_named():
    configs = _configs("fixed_etf", "paper", epochs=1, max_steps=2, nc_max_samples=512)
    for config, dim in zip(configs, (2048, 2048, 10, 10)):
        config["built"] = {"feature_dim": dim}
    text = describe_runs(configs)
    assert "d = 2048 or 10 (per legend)" in text
    assert "NC measured on a balanced subset of at most 512 samples per split" in text
    assert "1 epoch of at most 2 batches" in text
    configs = configs[:2]
    assert "ResNet50 (CIFAR stem), d = 2048;" in describe_runs(configs)


def test_configs_written_before_the_effective_stem_was_recorded():
    # Older config.json files of resnet18_adapt runs say "imagenet".
    configs = [dict(config, stem="imagenet") for config in _configs("fixed_etf", "smoke")]
    assert describe_runs(configs[:1]).startswith("ResNet18 width 8 (CIFAR stem);")
    # Without a recorded d, only that it varies.
    assert describe_runs(configs).startswith("ResNet18 width 8 (CIFAR stem), d per legend;")
    assert describe_runs([]) == ""


def test_loss_is_named_unless_cross_entropy():
    losses = _configs("nc_losses", "smoke")
    assert "loss per legend" in describe_runs(losses)
    assert "; MSE loss;" in describe_runs(losses[1:2])
    # Without a "loss" key (an older config.json): cross-entropy, unnamed.
    old = [{k: v for k, v in config.items() if k != "loss"} for config in losses[:1]]
    assert "loss" not in describe_runs(old)
