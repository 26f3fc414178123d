"""One entry point for the paper's training runs (Sec. 4).

`train(TrainConfig(...))` builds the data, the model, the optimizer and the
callbacks from a configuration and runs `model.fit`, writing into
`config.output_dir`:

- `config.json` and `versions.json`: what ran, and with which software;
- `log.csv`: one row per epoch (loss, accuracy, learning rate, and the
  NeuralCollapse metrics nc1..nc4, ncc_mismatch, ... for the training set
  and, prefixed `val_`, the test set);
- `tensorboard/`: the same scalars for TensorBoard;
- `nc_history/`: per-measurement `.npz` files (W, b, class means, metrics);
- `checkpoints/epoch_NNNN.keras` when `checkpoints=True`;
- `backup/` while the run is in progress: `keras.callbacks.BackupAndRestore`
  state, so that running the same configuration again after an
  interruption resumes at the last finished epoch (it is deleted when the
  run completes);
- `summary.json` and `figure.png` when the run completes.

`devices` and `strategy` train data-parallel on several devices, and
`coordinator` (JAX) on several processes or hosts, through each backend's
engine (see `nc_keras.backend.replicate`); the NC metrics stay those of one
device.

The paper's settings (SPEC section 4): SGD (momentum 0.9, lr 0.05, batch
128), Adam (lr 1e-3, batch 64), L-BFGS (history 10, lr 0.1, batch 2048),
200 epochs, the learning rate divided by 10 every 40 epochs, weight decay
5e-4 on all parameters (coupled L2, as PyTorch applies it).
"""

import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
from pathlib import Path

import keras

from nc_keras import backend

# The paper's defaults per optimizer (Sec. 4.1): learning rate, batch size.
OPTIMIZER_DEFAULTS = {
    "sgd": (0.05, 128),
    "adam": (1e-3, 64),
    "lbfgs": (0.1, 2048),
}
DECAY_SCHEMES = ("all", "features")
MODEL_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet18_adapt", "mlp", "densenet169",
)  # fmt: skip


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; field docs appear in `--help`."""

    dataset: str = dataclasses.field(
        default="cifar10",
        metadata={"help": "cifar10, mnist, cifar10_random, random_pixels, mnist_subset or folder"},
    )
    data_dir: str | None = dataclasses.field(
        default=None,
        metadata={"help": "local data (MNIST IDX files, a class-folder tree, or tfds data); see nc_keras.data"},
    )
    samples_per_class: int | None = dataclasses.field(
        default=None, metadata={"help": "train on the first n samples of each class (balanced subset)"}
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
        metadata={"help": "ResNet stem: imagenet (7x7 + max-pool, Sec. 4.1) or cifar (3x3, Sec. 4.3)"},
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
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of weights, data order and augmentation"})
    output_dir: str = dataclasses.field(default="runs/run", metadata={"help": "where results are written"})
    nc_every: int = dataclasses.field(default=1, metadata={"help": "measure NC every this many epochs"})
    nc_max_samples: int | None = dataclasses.field(
        default=None, metadata={"help": "measure NC on the first n samples of each split only"}
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
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}; got {self.model!r}.")
        if self.decay not in DECAY_SCHEMES:
            raise ValueError(f"decay must be one of {DECAY_SCHEMES}; got {self.decay!r}.")
        for name in ("epochs", "nc_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}.")
        if self.lr_drop_every < 0:
            raise ValueError(f"lr_drop_every must be >= 0; got {self.lr_drop_every}.")
        backend.check_replication(self.strategy, self.devices)
        rate, batch = OPTIMIZER_DEFAULTS[self.optimizer]
        return dataclasses.replace(
            self,
            learning_rate=rate if self.learning_rate is None else self.learning_rate,
            batch_size=batch if self.batch_size is None else self.batch_size,
            lambda_h=self.weight_decay if self.lambda_h is None else self.lambda_h,
            label=self.label or Path(self.output_dir).name,
        )


# The setting of Sec. 4.1 (Fig. 3) that several experiments vary one field
# of: ResNet18 with the ImageNet stem on CIFAR-10, no augmentation, 200
# epochs, weight decay 5e-4 (optimizer defaults from OPTIMIZER_DEFAULTS).
SEC41_PAPER = TrainConfig(
    dataset="cifar10", model="resnet18", stem="imagenet", epochs=200, weight_decay=5e-4
)
# Its CPU-sized version: a width-8 ResNet18 (3x3 stem) on 100 real MNIST
# images per class for a few epochs.
SEC41_SMOKE = TrainConfig(
    dataset="mnist", model="resnet18_adapt", width=8, samples_per_class=100,
    test_samples_per_class=50, epochs=6, weight_decay=5e-4,
)  # fmt: skip


def learning_rate_schedule(config):
    """The paper's step schedule: lr * factor ** (epoch // every)."""
    rate, every, factor = config.learning_rate, config.lr_drop_every, config.lr_drop_factor

    def schedule(epoch, current_rate=None):
        return float(rate * factor ** (epoch // every)) if every else float(rate)

    return schedule


def build_model(config, num_classes, input_shape):
    """The network of `config`, with the decay scheme's explicit penalties."""
    from nc_keras import models

    kwargs = dict(
        num_classes=num_classes,
        input_shape=input_shape,
        classifier=config.classifier,
        feature_dim=config.feature_dim,
    )
    if config.decay == "features":
        kwargs.update(
            lambda_w=config.weight_decay, lambda_b=config.weight_decay, lambda_h=config.lambda_h
        )
    if config.model.startswith("resnet") and config.model != "resnet18_adapt":
        kwargs["stem"] = config.stem
    if config.model == "resnet18_adapt" and config.width:
        kwargs["width"] = config.width
    if config.model == "mlp":
        if config.width:
            kwargs["width"] = config.width
        if config.depth:
            kwargs["depth"] = config.depth
    return getattr(models, config.model)(**kwargs)


def build_optimizer(config):
    """PyTorch-semantics SGD or Adam; coupled decay only in the "all" scheme."""
    from nc_keras import optimizers

    weight_decay = config.weight_decay if config.decay == "all" else None
    if config.optimizer == "sgd":
        return optimizers.SGD(
            config.learning_rate, momentum=config.momentum, weight_decay=weight_decay
        )
    if config.optimizer == "adam":
        return optimizers.Adam(config.learning_rate, weight_decay=weight_decay)
    raise ValueError(f"{config.optimizer!r} is not a Keras optimizer; see `fit_lbfgs`.")


def software_versions():
    """Versions of what a run depends on, for `versions.json`."""
    versions = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "keras_backend": keras.backend.backend(),
    }
    for module in ("nc_keras", "keras", "numpy", "tensorflow", "jax", "torch"):
        imported = sys.modules.get(module)
        if imported is None and module in ("nc_keras", "keras", "numpy"):
            imported = __import__(module)
        if imported is not None:
            versions[module] = getattr(imported, "__version__", "unknown")
    return versions


def _write_json(path, payload):
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def run_directory(config, process_index=None):
    """The folder `train(config)` writes on this process.

    `config.output_dir` on process 0 (the only one, unless JAX runs several)
    and `output_dir/process_i` on process i > 0: every process runs the same
    callbacks, so each needs a folder of its own. `process_index` defaults
    to this process's rank (`nc_keras.backend.process_index()`).
    """
    if process_index is None:
        process_index = backend.process_index()
    out = Path(config.output_dir)
    return out / f"process_{process_index}" if process_index else out


def train(config, callbacks=(), verbose="auto"):
    """Trains one configuration; resumes it if it was interrupted.

    Args:
        config: a `TrainConfig`.
        callbacks: extra Keras callbacks, run after the built-in ones.
        verbose: passed to `model.fit` (progress bar by default).

    Returns:
        A dict of per-epoch lists (the rows of `log.csv`, column-wise),
        including the epochs of an interrupted earlier attempt.

    Raises:
        FileExistsError: `output_dir` holds a finished run (delete it to
            train again: nothing is overwritten silently).
        ValueError: an invalid configuration.
        nc_keras.data.DataNotFoundError: the dataset is not available.
    """
    from nc_keras import callbacks as nc_callbacks
    from nc_keras import data, plots

    config = config.resolved()
    # First: a multi-process JAX run must start before any JAX computation.
    replication = backend.replicate(
        config.strategy, config.devices, config.coordinator, config.num_processes,
        config.process_id,
    )  # fmt: skip
    if replication.replicas > 1 and config.optimizer == "lbfgs":
        raise ValueError(
            "the mini-batch L-BFGS loop runs on one device: use optimizer sgd or "
            "adam for data-parallel training, or train on one device."
        )
    if replication.replicas > 1 and config.batch_size % replication.replicas:
        raise ValueError(
            f"batch_size {config.batch_size} does not split evenly over "
            f"{replication.replicas} replicas (devices x processes): choose a multiple "
            f"of {replication.replicas}, e.g. "
            f"{-(-config.batch_size // replication.replicas) * replication.replicas}."
        )
    out = run_directory(config, replication.process_index)
    if (out / "summary.json").exists():
        raise FileExistsError(
            f"{out} holds a finished run (summary.json); choose another output "
            "directory or delete it to train again."
        )
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", dataclasses.asdict(config))
    _write_json(out / "versions.json", software_versions())

    keras.utils.set_random_seed(config.seed)
    dataset_info = data.info(config.dataset, data_dir=config.data_dir)
    common = dict(data_dir=config.data_dir, seed=config.seed)
    # Data-parallel steps need batches that split evenly over the replicas
    # (JAX shards each batch; several processes must take equal steps), so
    # the last, partial training batch is dropped. NC is still measured on
    # every sample.
    train_data = data.load(
        config.dataset, "train", config.batch_size,
        samples_per_class=config.samples_per_class, augment=config.augment,
        drop_remainder=replication.replicas > 1, **common,
    )  # fmt: skip
    # NC is measured on the un-augmented training set, in file order.
    measure_batch = max(config.batch_size, 256)
    train_eval = data.load(
        config.dataset, "train", measure_batch, shuffle=False,
        samples_per_class=config.samples_per_class, **common,
    )  # fmt: skip
    test_eval = data.load(
        config.dataset, "test", measure_batch, shuffle=False,
        samples_per_class=config.test_samples_per_class, **common,
    )  # fmt: skip

    with replication.scope:
        _fit(config, model_inputs=(dataset_info.num_classes, dataset_info.input_shape),
             train_data=train_data, train_eval=train_eval, test_eval=test_eval,
             out=out, callbacks=callbacks, verbose=verbose)

    history = nc_callbacks.read_csv_log(out / "log.csv")
    _write_json(out / "summary.json", summarize(history))
    plots.plot_runs([out], out / "figure.png")
    return history


def _fit(config, model_inputs, train_data, train_eval, test_eval, out, callbacks, verbose):
    """Builds the model and its callbacks and trains (inside a distribution's scope)."""
    from nc_keras import callbacks as nc_callbacks

    model = build_model(config, *model_inputs)
    lbfgs = config.optimizer == "lbfgs"
    # Order matters: NeuralCollapse writes into `logs` before the loggers
    # read them, and the backup is saved last, once the epoch is logged.
    run_callbacks = [
        nc_callbacks.NeuralCollapse(
            train_eval, test_eval, every=config.nc_every,
            max_samples=config.nc_max_samples, history_path=str(out / "nc_history"),
        ),
        nc_callbacks.EpochCSVLogger(str(out / "log.csv")),
        keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False),
    ]  # fmt: skip
    if not lbfgs:  # the paper's L-BFGS keeps its learning rate (Sec. 4.1)
        run_callbacks.insert(1, keras.callbacks.LearningRateScheduler(learning_rate_schedule(config)))
    if config.checkpoints:
        (out / "checkpoints").mkdir(exist_ok=True)
        run_callbacks.append(
            keras.callbacks.ModelCheckpoint(str(out / "checkpoints" / "epoch_{epoch:04d}.keras"))
        )
    run_callbacks.append(keras.callbacks.BackupAndRestore(str(out / "backup")))
    run_callbacks.extend(callbacks)

    if lbfgs:
        fit_lbfgs(
            model, train_data, config.epochs, run_callbacks,
            weight_decay=config.weight_decay if config.decay == "all" else None,
            learning_rate=config.learning_rate, verbose=verbose,
        )  # fmt: skip
    else:
        model.compile(
            optimizer=build_optimizer(config),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        # The dataset shuffles itself (seeded); fit must not try to.
        model.fit(
            train_data, epochs=config.epochs, callbacks=run_callbacks, verbose=verbose,
            shuffle=False,
        )  # fmt: skip


def summarize(history):
    """The last epoch's values and the first-to-last NC1 ratio."""
    last = {key: values[-1] for key, values in history.items() if values}
    nc1 = [v for v in history.get("nc1", []) if not math.isnan(v)]
    if len(nc1) >= 2 and nc1[-1] > 0:
        last["nc1_first_over_last"] = nc1[0] / nc1[-1]
    last["epochs_completed"] = len(history.get("epoch", []))
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in last.items()}


def train_variants(base, variants, output_dir, layout="default", title=None, verbose="auto"):
    """Trains several variants of one configuration and overlays them.

    Each variant is a dict of `TrainConfig` fields (with a `label`) applied
    on top of `base`; it runs in `output_dir/<label>` (resuming it if it was
    interrupted, skipping it if it finished). Then `output_dir/figure.png`
    overlays all runs in `layout` (see `nc_keras.plots.LAYOUTS`) and
    `output_dir/summary.md` tabulates their last epochs.

    Returns:
        A list of (label, history) pairs.
    """
    from nc_keras import plots
    from nc_keras.callbacks import read_csv_log
    from nc_keras.reporting import format_table

    output_dir = Path(output_dir)
    results, run_dirs = [], []
    for variant in variants:
        label = variant["label"]
        run_dir = output_dir / label.replace(" ", "_").replace("/", "-")
        config = dataclasses.replace(base, output_dir=str(run_dir), **variant)
        if (run_dir / "summary.json").exists():
            print(f"[{label}] finished earlier; kept as is ({run_dir})")
            history = read_csv_log(run_dir / "log.csv")
        else:
            print(f"[{label}] training into {run_dir}")
            history = train(config, verbose=verbose)
        results.append((label, history))
        run_dirs.append(run_dir)
    figure = plots.plot_runs(run_dirs, output_dir / "figure.png", layout=layout, title=title)
    rows = [dict(summarize(history), label=label) for label, history in results]
    table = format_table(
        rows,
        ["label", ("epochs_completed", "epochs"), ("nc_accuracy", "train acc"),
         ("val_nc_accuracy", "test acc"), "nc1", "nc2", "nc3", "nc4"],
        formats={"nc_accuracy": ".4f", "val_nc_accuracy": ".4f",
                 **{f"nc{i}": ".3e" for i in range(1, 5)}},
    )  # fmt: skip
    (output_dir / "summary.md").write_text(table + "\n")
    print(table)
    print(f"figure: {figure}")
    return results


def fit_lbfgs(
    model,
    train_data,
    epochs,
    callbacks=(),
    weight_decay=None,
    history_size=10,
    iterations_per_batch=20,
    learning_rate=0.1,
    verbose="auto",
):
    """Mini-batch L-BFGS training with Keras callbacks (Sec. 4.1, Fig. 3).

    Each batch of `train_data` (the paper: 2048 samples) gets up to
    `iterations_per_batch` L-BFGS iterations, with a line search, on the
    batch objective

        mean cross-entropy + the model's penalties + weight_decay/2 ||theta||^2

    over all trainable weights theta (the paper's coupled L2, written into
    the objective since L-BFGS has no gradient hook). Inside the objective
    BatchNorm uses batch statistics; its moving statistics are updated once
    per batch, by one training-mode forward pass at the batch's final
    weights, which also gives the logged `loss` and `accuracy`.

    What each backend runs is in `nc_keras.backend.lbfgs_batch_minimizer`:
    on torch, `torch.optim.LBFGS` with the strong Wolfe line search and its
    history kept across batches, exactly the paper's method; on TensorFlow
    and JAX, tensorflow-probability's L-BFGS with a fresh history per batch
    and the Hager-Zhang line search (tfp has no strong Wolfe search).

    Callbacks receive the calls of `model.fit` (History, progress bar,
    `NeuralCollapse`, `EpochCSVLogger`, `TensorBoard`, `BackupAndRestore`
    for resuming).

    Returns:
        The `keras.callbacks.History` of the run.
    """
    objective, unflatten = _flat_objective(model, weight_decay)
    minimize = backend.lbfgs_batch_minimizer(
        objective, history_size=history_size, iterations=iterations_per_batch,
        learning_rate=learning_rate,
    )  # fmt: skip
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0,
        verbose=1 if verbose == "auto" else verbose, epochs=epochs,
        steps=_cardinality(train_data), model=model,
    )  # fmt: skip
    model.stop_training = False
    if not hasattr(model, "optimizer"):
        # Callbacks (TensorBoard, BackupAndRestore) look for one.
        model.optimizer = None
    callback_list.on_train_begin()
    epoch_logs = {}
    # BackupAndRestore sets `_initial_epoch` when it restores a run.
    for epoch in range(model._initial_epoch or 0, epochs):
        callback_list.on_epoch_begin(epoch)
        position = _flat_weights(model)
        loss_sum = correct = seen = 0.0
        for step, (x, y) in enumerate(train_data):
            callback_list.on_train_batch_begin(step)
            x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y, "int32")
            non_trainable = [v.value for v in model.non_trainable_variables]
            position = minimize(position, x, y, non_trainable)
            for variable, value in zip(model.trainable_variables, unflatten(position)):
                variable.assign(value)
            with _batch_norm_momentum(model, iterations_per_batch):
                logits = model(x, training=True)
            batch_loss = float(keras.ops.convert_to_numpy(
                cross_entropy(y, logits) + _penalty(model, position, weight_decay)
            ))  # fmt: skip
            batch_correct = float(keras.ops.convert_to_numpy(
                keras.ops.sum(keras.ops.cast(keras.ops.argmax(logits, -1) == y, "float32"))
            ))  # fmt: skip
            size = int(keras.ops.shape(y)[0])
            loss_sum, correct, seen = loss_sum + batch_loss * size, correct + batch_correct, seen + size
            callback_list.on_train_batch_end(
                step, {"loss": batch_loss, "accuracy": batch_correct / size}
            )
        epoch_logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(epoch_logs)
    return model.history


@contextlib.contextmanager
def _batch_norm_momentum(model, updates):
    """BatchNorm momentum m -> m ** updates for one forward pass.

    One pass then moves the moving statistics as `updates` passes at these
    weights would. PyTorch's L-BFGS updates them at every evaluation of the
    objective (about `iterations_per_batch` per batch); the compiled tfp
    objective is stateless, so the update is made once, scaled to match.
    """
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = layer.momentum**updates
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


def _cardinality(dataset):
    try:
        steps = int(dataset.cardinality())
    except (AttributeError, TypeError):
        return None
    return steps if steps > 0 else None


def _flat_weights(model):
    return keras.ops.concatenate(
        [keras.ops.reshape(v.value, (-1,)) for v in model.trainable_variables]
    )


def _penalty(model, position, weight_decay):
    total = sum(model.losses) if model.losses else 0.0
    if weight_decay:
        total = total + 0.5 * weight_decay * keras.ops.sum(keras.ops.square(position))
    return total


def _flat_objective(model, weight_decay):
    """The batch objective of one flat weight vector, and its inverse map."""
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    bounds = [0]
    for shape in shapes:
        bounds.append(bounds[-1] + math.prod(shape))
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def unflatten(position):
        return [
            keras.ops.reshape(position[start:stop], shape)
            for start, stop, shape in zip(bounds[:-1], bounds[1:], shapes)
        ]

    def objective(position, x, y, non_trainable):
        logits, _, losses = model.stateless_call(
            unflatten(position), non_trainable, x, training=True, return_losses=True
        )
        value = cross_entropy(y, logits)
        for penalty in losses:
            value = value + penalty
        if weight_decay:
            value = value + 0.5 * weight_decay * keras.ops.sum(keras.ops.square(position))
        return value

    return objective, unflatten
