"""nc_keras: neural collapse with Keras 3 (Zhu et al., NeurIPS 2021).

Submodules (each imported on first use):

- `nc_keras.layers`: `SimplexETF` (fixed classifier), `FeatureDecay`.
- `nc_keras.models`: ResNet18-152, ResNet18_adapt, MLP, DenseNet169 builders.
- `nc_keras.regularizers`: `HalfL2` (lambda/2 ||x||^2).
- `nc_keras.losses`: CE, MSE, label smoothing, focal: one formula each.
- `nc_keras.optimizers`: `SGD`, `Adam` with PyTorch semantics.
- `nc_keras.collapse`: NC1-NC4 metrics, streaming statistics.
- `nc_keras.callbacks`: `NeuralCollapse`, logging NC metrics in `model.fit`.
- `nc_keras.data`: CIFAR-10, MNIST, random labels and pixels, local sources.
- `nc_keras.ufm`: the unconstrained feature model, its optimum and solvers.
- `nc_keras.validation`: the one rule for class counts, sizes, numbers, labels.
- `nc_keras.io_utils`: atomic file writing.

`import nc_keras` registers every custom Keras object the package defines
(layers, the regularizer, the optimizers, the training losses), so that
`keras.models.load_model` reads every file nc_keras writes -- a model, or a
checkpoint of `nc-keras train --checkpoints` with its optimizer -- after
`import nc_keras` alone.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "backend",
    "callbacks",
    "collapse",
    "data",
    "deprecation",
    "io_utils",
    "layers",
    "losses",
    "models",
    "optimizers",
    "plots",
    "presets",
    "regularizers",
    "reporting",
    "run_folder",
    "train",
    "ufm",
    "validation",
)


# Imported for their `keras.saving.register_keras_serializable` side effect
# (`nc_keras.losses` holds the Keras loss classes; the trainer is not loaded).
from nc_keras import layers as _layers  # noqa: E402,F401
from nc_keras import losses as _losses  # noqa: E402,F401
from nc_keras import optimizers as _optimizers  # noqa: E402,F401
from nc_keras import regularizers as _regularizers  # noqa: E402,F401


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
