"""What a figure or a summary shows, in words, from its runs' config.json.

A smoke run's figure must not read as the paper's: every figure and
`summary.md` names the model (width, stem, feature dimension), the data
(images per class, augmentation, the subset NC is measured on), the epochs
and the optimizer of its runs. `describe_runs(configs)` writes that text:
settings the runs share once, those that differ "per legend" (the legend
and the table's labels name them).
"""

import json
from pathlib import Path

from nc_keras.models import registry
from nc_keras.run_folder import RunFolder

MODEL_TITLES = {name: model.title for name, model in registry.MODELS.items()}
DATASET_TITLES = {
    "cifar10": "CIFAR-10", "mnist": "MNIST", "cifar10_random": "CIFAR-10 with random labels",
    "random_pixels": "random pixels", "mnist_subset": "MNIST subset (shipped)",
    "folder": "image folder",
}  # fmt: skip
OPTIMIZER_TITLES = {"sgd": "SGD", "adam": "Adam", "lbfgs": "L-BFGS"}
LOSS_TITLES = {"mse": "MSE", "label_smoothing": "label-smoothing", "focal": "focal"}


def read_configs(run_dirs):
    """The config.json of each run directory that has one (a CSV file's folder too)."""
    configs = []
    for run in map(Path, run_dirs):
        path = RunFolder(run.parent if run.suffix == ".csv" else run).config
        if path.exists():
            configs.append(json.loads(path.read_text()))
    return configs


def run_label(run_dir):
    """A run's name in legends and tables: its config's `label`, else its folder's name."""
    configs = read_configs([run_dir])
    return (configs[0].get("label") if configs else None) or Path(run_dir).name


def describe_runs(configs):
    """One paragraph saying what the runs of `configs` (config.json dicts) are.

    E.g. "ResNet18 width 8 (CIFAR stem); CIFAR-10, 100 train / 50 test
    images per class, augmented; 6 epochs; SGD lr 0.05, batch 32, weight
    decay 0.0005". Empty when there is no config.
    """
    if not configs:
        return ""
    parts = [_model(configs), _data(configs), _training(configs)]
    return "; ".join(part for part in parts if part)


def _shared(configs, key, default=None):
    """The value every config has for `key` (`default` where it has none:
    a config.json written before the field existed), or None when they differ."""
    values = {json.dumps(config.get(key, default)) for config in configs}
    return configs[0].get(key, default) if len(values) == 1 else None


def _architecture(config):
    """(model title, width, depth, stem) as built, also for configs written
    before config.json recorded the effective ones."""
    model = config.get("model")
    if model not in MODEL_TITLES:
        return str(model), None, None, None
    built = registry.architecture(model, config.get("stem"), config.get("width"), config.get("depth"))
    stem = built["stem"] and {"imagenet": "ImageNet", "cifar": "CIFAR"}.get(built["stem"], built["stem"])
    return MODEL_TITLES[model], built["width"], built["depth"], stem


def _model_text(title, widths, depths, stem):
    """E.g. "ResNet18 width 8 (CIFAR stem)", "MLP 3 x 256", "MLP of depth 3"."""
    width = widths.pop() if len(widths) == 1 else None
    depth = depths.pop() if len(depths) == 1 else None
    if depth and width:
        text = f"{title} {depth} x {width}"
    else:
        text = title + (f" width {width}" if width else "") + (f" of depth {depth}" if depth else "")
    return text + (f" ({stem} stem)" if stem else "")


def _model(configs):
    """The architectures; widths, depths and d named once when the runs share them."""
    groups = {}
    for config in configs:
        title, width, depth, stem = _architecture(config)
        group = groups.setdefault((title, stem), (set(), set()))
        group[0].add(width)
        group[1].add(depth)
    text = " and ".join(
        _model_text(title, set(widths), set(depths), stem)
        for (title, stem), (widths, depths) in groups.items()
    )
    if any(len(widths) > 1 for widths, _ in groups.values()):
        text += ", widths per legend"
    # d: the built one (config.json's "built"), else only whether it varies.
    dims = {(config.get("built") or {}).get("feature_dim") for config in configs}
    if None in dims:
        dims = {None} if len({config.get("feature_dim") for config in configs}) == 1 else {None, 0}
    if len(dims) == 1 and None not in dims:
        text += f", d = {dims.pop()}"
    elif len(dims) == 2 and None not in dims:
        text += f", d = {' or '.join(map(str, sorted(dims, reverse=True)))} (per legend)"
    elif len(dims) > 1:
        text += ", d per legend"
    if {config.get("classifier", "learned") for config in configs} == {"etf"}:
        text += ", fixed ETF classifier"
    return text


def _per_class(value, split):
    if isinstance(value, (list, tuple)):  # a class-imbalanced subset
        return f"{max(value)} to {min(value)} {split}"
    return f"{value} {split}" if value else f"all {split}"


def _data(configs):
    dataset = _shared(configs, "dataset")
    text = DATASET_TITLES.get(dataset, dataset) if dataset else "data per legend"
    train, test = _shared(configs, "samples_per_class"), _shared(configs, "test_samples_per_class")
    if train or test:
        text += f", {_per_class(train, 'train')} / {_per_class(test, 'test')} images per class"
    else:
        text += ", full train and test sets"
    ratio = _shared(configs, "imbalance_ratio")
    if ratio:
        text += f", long-tailed (imbalance ratio {ratio:g})"
    if _shared(configs, "augment"):
        text += ", augmented"
    nc_samples = _shared(configs, "nc_max_samples")
    if nc_samples:
        text += f", NC measured on a balanced subset of at most {nc_samples} samples per split"
    return text


def _training(configs):
    epochs = _shared(configs, "epochs")
    text = f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "epochs per legend"
    steps = _shared(configs, "max_steps")
    if steps:
        text += f" of at most {steps} batch{'es' if steps != 1 else ''}"
    loss = _shared(configs, "loss", "ce")
    if loss is None:
        text += "; loss per legend"
    elif loss != "ce":
        text += f"; {LOSS_TITLES.get(loss, loss)} loss"
    optimizer = _shared(configs, "optimizer")
    if optimizer is None:
        return text + "; optimizer per legend"
    text += f"; {OPTIMIZER_TITLES.get(optimizer, optimizer)}"
    for key, title in (("learning_rate", "lr"), ("batch_size", "batch"), ("weight_decay", "weight decay")):
        value = _shared(configs, key)
        if value is not None:
            text += f", {title} {value:g}"
    return text
