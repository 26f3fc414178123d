"""Trainable-parameter savings of a fixed classifier and of d = K (Sec. 4.3)."""

import functools
import math

import keras

from nc_keras.models.densenet import densenet169
from nc_keras.models.resnet import resnet18, resnet50


def count_trainable_params(model):
    """Trainable parameters, as the paper counts them (Sec. 4.3).

    BatchNorm moving statistics and a fixed ETF kernel are not trainable
    weights, so they are not counted.
    """
    return int(sum(math.prod(weight.shape) for weight in model.trainable_weights))


# The comparisons of Sec. 4.3: (model, builder, dataset, K, variant, changed
# builder arguments, the paper's reduction in %).
PAPER_SAVINGS = (
    ("ResNet50", resnet50, "ImageNet", 1000, "fixed ETF classifier", (("classifier", "etf"),), 8.01),
    ("DenseNet169", densenet169, "ImageNet", 1000, "fixed ETF classifier", (("classifier", "etf"),), 11.76),
    ("ResNet18", resnet18, "CIFAR-10", 10, "d = K", (("feature_dim", 10),), 20.70),
    ("ResNet50", resnet50, "CIFAR-10", 10, "d = K", (("feature_dim", 10),), 4.45),
)


def parameter_savings(comparisons=PAPER_SAVINGS):
    """Trainable-parameter savings of a fixed classifier and of d = K (Sec. 4.3).

    Each comparison builds the model with the learned classifier and the
    architecture's own d, and the variant, in the torchvision layout with
    the ImageNet stem (the layout in which the paper's numbers hold), and
    counts trainable parameters with `count_trainable_params`. Counts do not
    depend on the spatial input size, so small inputs are used.

    Args:
        comparisons: rows as `PAPER_SAVINGS`.

    Returns:
        A list of dicts with keys `model`, `dataset`, `num_classes`,
        `variant`, `baseline_params`, `variant_params`, `reduction_percent`
        and `paper_percent`.
    """
    return [dict(row) for row in _parameter_savings(comparisons)]


# Building eight networks takes tens of seconds; the counts never change.
@functools.lru_cache(maxsize=4)
def _parameter_savings(comparisons):
    rows = []
    for title, builder, dataset, num_classes, variant, changes, paper in comparisons:
        common = dict(num_classes=num_classes, input_shape=(64, 64, 3))
        baseline = count_trainable_params(builder(**common))
        # The models are dropped here; the user's Keras state (layer name
        # counters, a TF graph) is not reset: no clear_session in a library.
        changed = count_trainable_params(builder(**common, **dict(changes)))
        rows.append(
            {
                "model": title,
                "dataset": dataset,
                "num_classes": num_classes,
                "variant": variant,
                "baseline_params": baseline,
                "variant_params": changed,
                "reduction_percent": 100.0 * (baseline - changed) / baseline,
                "paper_percent": paper,
            }
        )
    return tuple(rows)
