"""Every network of `nc_keras.models` by name: its builder, its title, its options.

One table, read by the trainer (`nc_keras.train`: which builder a
`TrainConfig.model` names, which options it takes), by the figure and
summary text (`nc_keras.describe`: the title) and by the command line:

    name             title        stem    width   depth
    resnet18..152    ResNet18..   yes     -       -
    resnet18_adapt   ResNet18     cifar   k       -
    mlp              MLP          -       units   layers
    densenet169      DenseNet169  -       -       -
"""

import dataclasses
import inspect

__all__ = ["MODELS", "MODEL_NAMES", "ModelSpec", "architecture", "build", "spec"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One network: `name` (its builder in `nc_keras.models`), `title` (in
    figures), and which of the options stem, width, depth it takes (`stem`:
    True, or the one stem it always has)."""

    name: str
    title: str
    stem: object = None
    width: bool = False
    depth: bool = False

    @property
    def builder(self):
        from nc_keras import models

        return getattr(models, self.name)

    def default(self, argument):
        """The builder's default value of `argument`."""
        return inspect.signature(self.builder).parameters[argument].default


MODELS = {
    spec.name: spec for spec in (
        ModelSpec("resnet18", "ResNet18", stem=True),
        ModelSpec("resnet34", "ResNet34", stem=True),
        ModelSpec("resnet50", "ResNet50", stem=True),
        ModelSpec("resnet101", "ResNet101", stem=True),
        ModelSpec("resnet152", "ResNet152", stem=True),
        ModelSpec("resnet18_adapt", "ResNet18", stem="cifar", width=True),
        ModelSpec("mlp", "MLP", width=True, depth=True),
        ModelSpec("densenet169", "DenseNet169"),
    )
}  # fmt: skip
MODEL_NAMES = tuple(MODELS)


def spec(name):
    """The `ModelSpec` of `name`; ValueError naming the choices otherwise."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODEL_NAMES}; got {name!r}.")
    return MODELS[name]


def architecture(name, stem=None, width=None, depth=None):
    """The stem, width and depth `name` is built with, given the options.

    So that a run's config.json says what ran: resnet18_adapt always has the
    CIFAR stem, an MLP or DenseNet none, and an unset width or depth is the
    builder's default.
    """
    model = spec(name)
    return dict(
        stem=stem if model.stem is True else model.stem,
        width=(width or model.default("width")) if model.width else None,
        depth=(depth or model.default("depth")) if model.depth else None,
    )


def build(name, num_classes, *, stem=None, width=None, depth=None, **kwargs):
    """The `name` network for `num_classes` classes, with the options it takes
    (stem, width, depth; None: the builder's default) and the builders'
    common keyword arguments (`input_shape`, `classifier`, ...)."""
    model = spec(name)
    options = {key: value for key, value, takes in (
        ("stem", stem, model.stem is True), ("width", width, model.width),
        ("depth", depth, model.depth)) if takes and value is not None}  # fmt: skip
    return model.builder(num_classes, **options, **kwargs)
