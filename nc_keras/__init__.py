"""nc_keras: neural collapse with Keras 3 (Zhu et al., NeurIPS 2021).

Submodules (each imported on first use, so `import nc_keras` stays light):

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


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
