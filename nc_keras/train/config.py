"""What defines a training run: `TrainConfig`, its checks and the paper's defaults.

The paper's settings (Sec. 4.1): SGD with momentum 0.9, learning rate 0.05,
batch 128; Adam, learning rate 1e-3, batch 64; L-BFGS with history 10,
learning rate 0.1, batch 2048; 200 epochs, the learning rate divided by 10
every 40 epochs; weight decay 5e-4 on all parameters (coupled L2, as PyTorch
applies it). The appendix's alternative puts the decay on the last layer and
the features only, as in the unconstrained feature model (eq. (3)).
"""

import dataclasses
import math
from pathlib import Path

from nc_keras import backend, data
from nc_keras.models import registry
from nc_keras.models.registry import MODEL_NAMES
from nc_keras.train.losses import check_loss

# The paper's defaults per optimizer (Sec. 4.1): learning rate, batch size.
OPTIMIZER_DEFAULTS = {
    "sgd": (0.05, 128),
    "adam": (1e-3, 64),
    "lbfgs": (0.1, 2048),
}
DECAY_SCHEMES = ("all", "features")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; field docs appear in `--help`."""

    dataset: str = dataclasses.field(
        default="cifar10",
        metadata={"help": "one of " + ", ".join(data.NAMES) + ", or tfds:<name> for any "
                  "tensorflow-datasets image classification set (see nc_keras.data)"},
    )
    dataset_options: dict | None = dataclasses.field(
        default=None,
        metadata={"help": "the dataset's options, key=value pairs separated by commas, e.g. "
                  "label=coarse (cifar100's 20 superclasses) or image_size=(224,224) (tfds:<name>)",
                  "parse": data.parse_dataset_options},
    )
    random_labels: bool = dataclasses.field(
        default=False,
        metadata={"help": "replace every label by a seeded, balanced random assignment (Sec. 4.2); "
                  "any dataset"},
    )
    data_dir: str | None = dataclasses.field(
        default=None,
        metadata={"help": "local data (IDX files, CIFAR pickles, a class-folder tree, ImageNet's "
                  "manual download, or tfds data); see nc_keras.data"},
    )
    samples_per_class: int | list[int] | None = dataclasses.field(
        default=None,
        metadata={"help": "train on the first n samples of each class (balanced subset), or on "
                  "the first n_k of class k for a list of K counts (e.g. 500,250,100,...: "
                  "class-imbalanced); the command line takes a comma-separated list",
                  "parse": data.parse_samples_per_class},
    )
    imbalance_ratio: float | None = dataclasses.field(
        default=None,
        metadata={"help": "long-tailed training subset: n_k = floor(n_max R^(-k/(K-1))) for "
                  "classes k = 0..K-1, from n_max (samples_per_class, else the smallest "
                  "class's size) down to n_max/R (Cui et al. 2019); the test set stays balanced"},
    )
    test_samples_per_class: int | None = dataclasses.field(
        default=None, metadata={"help": "evaluate on the first n test samples of each class"}
    )
    augment: bool = dataclasses.field(
        default=False, metadata={"help": "random crop 32 (padding 4) and horizontal flip (Sec. 4.3)"}
    )
    model: str = dataclasses.field(
        default="resnet18", metadata={"help": "one of " + ", ".join(MODEL_NAMES)}
    )
    stem: str = dataclasses.field(
        default="imagenet",
        metadata={"help": "ResNet stem: imagenet (7x7 + max-pool, Sec. 4.1), cifar (3x3, Sec. 4.3), "
                  "or auto: the one for the dataset's input size (cifar below 128 pixels, e.g. "
                  "32x32 and STL-10's 96x96; imagenet from 128, e.g. ImageNet's 224x224); "
                  "resnet18_adapt always has the cifar one"},
    )
    width: int | None = dataclasses.field(
        default=None, metadata={"help": "resnet18_adapt: first-stage width k; mlp: hidden width"}
    )
    depth: int | None = dataclasses.field(default=None, metadata={"help": "mlp: number of hidden layers"})
    classifier: str = dataclasses.field(
        default="learned", metadata={"help": "learned, or etf (fixed simplex ETF, Sec. 4.3)"}
    )
    feature_dim: int | None = dataclasses.field(
        default=None, metadata={"help": "feature dimension d (e.g. d = K); default: the architecture's"}
    )
    optimizer: str = dataclasses.field(default="sgd", metadata={"help": "sgd, adam or lbfgs"})
    learning_rate: float | None = dataclasses.field(
        default=None, metadata={"help": "initial learning rate; default 0.05 (sgd), 1e-3 (adam), 0.1 (lbfgs)"}
    )
    momentum: float = dataclasses.field(default=0.9, metadata={"help": "SGD momentum"})
    batch_size: int | None = dataclasses.field(
        default=None, metadata={"help": "batch size; default 128 (sgd), 64 (adam), 2048 (lbfgs)"}
    )
    epochs: int = dataclasses.field(default=200, metadata={"help": "number of epochs"})
    max_steps: int | None = dataclasses.field(
        default=None,
        metadata={"help": "train on at most this many batches per epoch (the first ones of "
                  "each epoch's shuffle; the data is not repeated): a quick pre-flight run "
                  "of a full-size configuration"},
    )
    lr_drop_every: int = dataclasses.field(
        default=40, metadata={"help": "divide the learning rate every this many epochs (0: never)"}
    )
    lr_drop_factor: float = dataclasses.field(
        default=0.1, metadata={"help": "multiply the learning rate by this at each drop"}
    )
    weight_decay: float = dataclasses.field(
        default=5e-4, metadata={"help": "lambda: coupled L2 on all parameters, or on W and b (features scheme)"}
    )
    decay: str = dataclasses.field(
        default="all",
        metadata={"help": "all: coupled L2 on every parameter (paper default); features: "
                  "lambda/2 (||W||^2 + ||b||^2) + lambda_h/2 ||H||^2, no backbone decay (appendix)"},
    )
    lambda_h: float | None = dataclasses.field(
        default=None, metadata={"help": "features scheme: decay on the raw features H (default: weight_decay)"}
    )
    loss: str = dataclasses.field(
        default="ce",
        metadata={"help": "ce (cross-entropy); mse: (1/2)||z - e_y||^2 summed over the K logits, "
                  "averaged over samples, one-hot targets unscaled (Zhou et al. 2022); "
                  "label_smoothing: CE against (1-alpha) e_y + alpha/K; focal: "
                  "-(1-p_y)^gamma log p_y (Lin et al. 2017). See nc_keras.train.losses"},
    )
    label_smoothing: float = dataclasses.field(
        default=0.1, metadata={"help": "alpha of --loss label_smoothing"}
    )
    focal_gamma: float = dataclasses.field(default=2.0, metadata={"help": "gamma of --loss focal"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of weights, data order and augmentation"})
    output_dir: str = dataclasses.field(default="runs/run", metadata={"help": "where results are written"})
    nc_every: int = dataclasses.field(default=1, metadata={"help": "measure NC every this many epochs"})
    nc_max_samples: int | None = dataclasses.field(
        default=None,
        metadata={"help": "measure NC on a balanced subset of n samples of each split only "
                  "(the first n // K of each class)"},
    )
    checkpoints: bool = dataclasses.field(
        default=False, metadata={"help": "save checkpoints/epoch_NNNN.keras after every epoch"}
    )
    label: str | None = dataclasses.field(default=None, metadata={"help": "the run's name in figures"})
    devices: int | None = dataclasses.field(
        default=None,
        metadata={"help": "local devices (GPUs, TPU cores, CPU devices) each process trains on, "
                  "data-parallel; batch_size is the global batch, split evenly over all of "
                  "them. Default: one; every local device with --strategy data_parallel or "
                  "in a multi-process run"},
    )
    strategy: str = dataclasses.field(
        default="auto",
        metadata={"help": "auto: data_parallel when --devices > 1 or a multi-process JAX run "
                  "is configured (--coordinator or KERAS_DISTRIBUTION_JOB_ADDRESSES), else "
                  "none; none: one device; data_parallel: keras.distribution.DataParallel on "
                  "JAX (several hosts too), tf.distribute.MirroredStrategy on TensorFlow (one "
                  "host); not available on torch"},
    )
    coordinator: str | None = dataclasses.field(
        default=None,
        metadata={"help": "multi-process JAX: host:port of process 0, reachable from every "
                  "process; starts jax.distributed via keras.distribution.initialize"},
    )
    num_processes: int | None = dataclasses.field(
        default=None, metadata={"help": "multi-process JAX: number of processes (with --coordinator)"}
    )
    process_id: int | None = dataclasses.field(
        default=None,
        metadata={"help": "multi-process JAX: this process's rank, 0 to num_processes - 1; "
                  "process 0 writes output_dir, process i > 0 output_dir/process_i"},
    )

    def resolved(self):
        """A copy with the per-optimizer defaults filled in, after checks."""
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ValueError(
                f"optimizer must be one of {tuple(OPTIMIZER_DEFAULTS)}; got {self.optimizer!r}."
            )
        registry.spec(self.model)  # ValueError naming the models otherwise
        if self.decay not in DECAY_SCHEMES:
            raise ValueError(f"decay must be one of {DECAY_SCHEMES}; got {self.decay!r}.")
        _check_numbers(self)
        check_loss(self.loss, self.label_smoothing, self.focal_gamma)
        data.check_class_profile(self.samples_per_class, self.imbalance_ratio)
        backend.check_replication(self.strategy, self.devices)
        stem = self.stem
        if stem == "auto" and self.model.startswith("resnet"):
            options = data.dataset_options(self.dataset_options, self.random_labels)
            stem = stem_for(data.info(self.dataset, data_dir=self.data_dir, **options).input_shape)
        rate, batch = OPTIMIZER_DEFAULTS[self.optimizer]
        return dataclasses.replace(
            self,
            learning_rate=rate if self.learning_rate is None else self.learning_rate,
            batch_size=batch if self.batch_size is None else self.batch_size,
            lambda_h=self.weight_decay if self.lambda_h is None else self.lambda_h,
            label=self.label or Path(self.output_dir).name,
            **registry.architecture(self.model, stem, self.width, self.depth),
        )


AUTO_STEM_PIXELS = 128


def stem_for(input_shape):
    """The ResNet stem for images of `input_shape`: "cifar" below 128 pixels, else "imagenet".

    The ImageNet stem divides the resolution by 4 before the first stage:
    a 32x32 image would leave 1x1 maps in the last stage, a 224x224 one
    7x7; the CIFAR stem keeps the resolution, which costs 16x the compute
    at 224x224.
    """
    return "cifar" if min(input_shape[:2]) < AUTO_STEM_PIXELS else "imagenet"


# The former home of `nc_keras.models.registry.architecture`.
effective_architecture = registry.architecture


# Numeric fields and the values they accept: (name, lowest, lowest allowed?).
# Checked here, before anything is built or written, because a bad value
# otherwise surfaces late (a TensorFlow traceback for batch size 0) or not at
# all (a negative learning rate or decay trains, away from the minimum).
_AT_LEAST_ONE = ("epochs", "nc_every", "batch_size", "samples_per_class",
                 "test_samples_per_class", "nc_max_samples", "width", "depth",
                 "feature_dim", "devices", "max_steps")  # fmt: skip
_NON_NEGATIVE = ("weight_decay", "lambda_h", "momentum", "lr_drop_every")
_POSITIVE = ("learning_rate", "lr_drop_factor")


def _check_numbers(config):
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{field.name} must be a finite number; got {value}.")
    for name in _AT_LEAST_ONE:
        value = getattr(config, name)
        if isinstance(value, (list, tuple)):  # per-class counts
            value = min(value, default=None)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}.")
    for name in _NON_NEGATIVE:
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0; got {value}.")
    for name in _POSITIVE:
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0; got {value}.")


def minority_classes(config, num_classes):
    """The minority classes of an imbalanced configuration, or None if balanced.

    For a list `samples_per_class`, the classes with fewer samples than the
    largest; for `imbalance_ratio`, the second half of the classes (k >=
    K/2, the tail of the long-tailed profile), as in Fang et al. (PNAS 2021),
    where the minority classes are the last K/2.
    """
    if config.imbalance_ratio is not None:
        return list(range(num_classes // 2, num_classes))
    counts = config.samples_per_class
    if isinstance(counts, (list, tuple)):
        minority = [k for k, n in enumerate(counts) if n < max(counts)]
        return minority or None
    return None


def learning_rate_schedule(config):
    """The paper's step schedule (Sec. 4.1): lr * factor ** (epoch // every).

    With the defaults, the learning rate is divided by 10 every 40 epochs;
    `lr_drop_every=0` keeps it constant.
    """
    rate, every, factor = config.learning_rate, config.lr_drop_every, config.lr_drop_factor

    def schedule(epoch, current_rate=None):
        return float(rate * factor ** (epoch // every)) if every else float(rate)

    return schedule
