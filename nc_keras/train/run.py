"""One training run: `train(config)` and the pieces it builds.

`train(TrainConfig(...))` builds the data, the model, the optimizer and the
callbacks from a configuration and runs `model.fit` (or `fit_lbfgs`),
writing the run's files into its folder (`nc_keras.run_folder` names
them): `config.json` (the resolved configuration, and under `built` the
model's name, feature dimension and trainable parameters) and
`versions.json` (what ran, with which software),
`log.csv` (one row per epoch: loss, accuracy, learning rate, and the
NeuralCollapse metrics nc1..nc4, ncc_mismatch, ... for the training set and,
prefixed `val_`, the test set; for a class-imbalanced subset also
minority_accuracy and minority_cosine), `tensorboard/`, `nc_history/`,
`checkpoints/` when asked for, `backup/` while the run is in progress (so
that running the same configuration again after an interruption resumes at
the last finished epoch, as `nc_keras.train.resume` describes), and
`figure.png` and `summary.json` when it ends: "finished", or "diverged" when
the loss became NaN (training stops at that batch; `TrainingDiverged`).

`devices` and `strategy` train data-parallel on several devices, and
`coordinator` (JAX) on several processes or hosts, through each backend's
engine (see `nc_keras.backend.replicate`); the NC metrics stay those of one
device.
"""

import dataclasses
import math
import platform
import shutil
import sys
from pathlib import Path

import keras

from nc_keras import backend
from nc_keras.io_utils import write_json
from nc_keras.run_folder import RunFolder
from nc_keras.train import resume
from nc_keras.train.config import learning_rate_schedule, minority_classes
from nc_keras.train.lbfgs_fit import fit_lbfgs
from nc_keras.train.losses import build_loss


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped, marked "diverged"."""


def build_model(config, num_classes, input_shape):
    """The network of `config`, with the decay scheme's explicit penalties."""
    from nc_keras.models import registry

    penalties = {}
    if config.decay == "features":
        penalties = dict(
            lambda_w=config.weight_decay, lambda_b=config.weight_decay, lambda_h=config.lambda_h
        )
    return registry.build(
        config.model, num_classes, stem=config.stem, width=config.width, depth=config.depth,
        input_shape=input_shape, classifier=config.classifier, feature_dim=config.feature_dim,
        **penalties,
    )  # fmt: skip


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
        ValueError: an invalid configuration, an output directory that
            cannot be written, or an unfinished run there with other
            settings. Nothing is written then.
        nc_keras.data.DataNotFoundError: the dataset is not available
            (nothing is written either).
        TrainingDiverged: the loss became NaN; `summary.json` says
            "diverged", and training again into the folder starts over.
        nc_keras.run_folder.RunFolderLocked: another live process trains
            into `output_dir` (nothing is written). A lock left by a
            process that died is taken over with a warning.
    """
    config = config.resolved()
    # First: a multi-process JAX run must start before any JAX computation.
    replication = backend.replicate(
        config.strategy, config.devices, config.coordinator, config.num_processes,
        config.process_id,
    )  # fmt: skip
    _check_replicas(config, replication.replicas)
    folder = RunFolder(run_directory(config, replication.process_index))
    folder.check_writable()
    # One writer per folder (a requeued job while the old one lives):
    # taken before anything is written, held to the end.
    with folder.lock():
        start = _prepare_folder(folder, config)
        if start is None:  # interrupted after fit, before the summary: nothing to train
            return _conclude(folder)
        keras.utils.set_random_seed(config.seed)
        run_data = _load_data(config, start, replication.replicas)
        # The first write: every check that can refuse the run is behind us.
        _start_writing(folder, config, start, run_data)
        with replication.scope:
            _fit(config, run_data, folder=folder, callbacks=callbacks, verbose=verbose)
        return _conclude(folder)


def _check_replicas(config, replicas):
    """ValueError for what data-parallel training cannot do with `config`."""
    if replicas > 1 and config.optimizer == "lbfgs":
        raise ValueError(
            "the mini-batch L-BFGS loop runs on one device: use optimizer sgd or "
            "adam for data-parallel training, or train on one device."
        )
    if replicas > 1 and config.batch_size % replicas:
        raise ValueError(
            f"batch_size {config.batch_size} does not split evenly over "
            f"{replicas} replicas (devices x processes): choose a multiple "
            f"of {replicas}, e.g. {-(-config.batch_size // replicas) * replicas}."
        )


def _prepare_folder(folder, config):
    """The first epoch `train(config)` trains in the locked `folder`, after the
    checks; only the temporary files of an interrupted write are removed.

    None when a previous attempt already ended its fit (only the summary is
    missing).
    """
    if folder.finished:
        raise FileExistsError(
            f"{folder.root} holds a finished run ({folder.summary.name}); choose another "
            "output directory or delete it to train again."
        )
    # A diverged run has nothing to resume: it starts over, with any settings.
    continuing = folder.config.exists() and folder.status != "diverged"
    # What an interrupted write left: only the lock holder (us) writes here.
    resume.remove_staging_files(folder)
    if continuing:
        resume.check_same_run(folder, config)
        resume.check_backup(folder)
        if resume.fit_ended(folder, config.epochs, _read_log(folder)):
            shutil.rmtree(folder.backup, ignore_errors=True)
            return None
    start = resume.resume_epoch(folder) if continuing else 0
    if start >= config.epochs:
        raise ValueError(
            f"{folder.root}: its backup has all {config.epochs} epochs trained but "
            f"{folder.log.name} lacks some of them; delete the folder to train again."
        )
    return start


@dataclasses.dataclass
class _RunData:
    """What `_fit` trains and measures on."""

    info: object  # the dataset's `nc_keras.data.info`
    train: object  # the epochs still to train, as one stream
    steps_per_epoch: int
    train_eval: object  # NC's training set: un-augmented, in file order
    test_eval: object

    @property
    def num_classes(self):
        return self.info.num_classes

    @property
    def input_shape(self):
        return self.info.input_shape


def _load_data(config, start, replicas):
    """The training stream from epoch `start` on, and the sets NC is measured on."""
    from nc_keras import data

    options = data.dataset_options(config.dataset_options, config.random_labels)
    dataset_info = data.info(config.dataset, data_dir=config.data_dir, **options)
    common = dict(data_dir=config.data_dir, seed=config.seed, **options)
    # Data-parallel steps need batches that split evenly over the replicas
    # (JAX shards each batch; several processes must take equal steps), so
    # the last, partial training batch is dropped. NC is still measured on
    # every sample. The epochs still to train come as one stream, each
    # epoch's order fixed by (seed, epoch), so a resumed run sees the
    # batches an uninterrupted one would.
    train_data = data.load(
        config.dataset, "train", config.batch_size,
        samples_per_class=config.samples_per_class, imbalance_ratio=config.imbalance_ratio,
        augment=config.augment, drop_remainder=replicas > 1,
        epochs=range(start, config.epochs), max_batches=config.max_steps, **common,
    )  # fmt: skip
    # At most max_steps batches per epoch: the first ones of its order.
    steps_per_epoch = int(train_data.cardinality()) // (config.epochs - start)
    # NC is measured on the un-augmented training set, in file order.
    measure_batch = max(config.batch_size, 256)
    train_eval = data.load(
        config.dataset, "train", measure_batch, shuffle=False,
        samples_per_class=measured_per_class(config.samples_per_class, config.nc_max_samples,
                                             config.imbalance_ratio, dataset_info, "train"),
        imbalance_ratio=config.imbalance_ratio,
        **common,
    )  # fmt: skip
    # The test set stays balanced: per-class accuracy is comparable across classes.
    test_eval = data.load(
        config.dataset, "test", measure_batch, shuffle=False,
        samples_per_class=measured_per_class(config.test_samples_per_class,
                                             config.nc_max_samples, None, dataset_info, "test"),
        **common,
    )  # fmt: skip
    return _RunData(dataset_info, train_data, steps_per_epoch, train_eval, test_eval)


def _start_writing(folder, config, start, run_data):
    """Clears what a restart replaces, then writes config.json and versions.json."""
    if start == 0 and folder.config.exists():
        resume.start_over(folder)
    elif start > 0:
        resume.prune_tensorboard(folder.tensorboard, start)
    folder.root.mkdir(parents=True, exist_ok=True)
    write_json(folder.config, _described(config, run_data))
    write_json(folder.versions, software_versions())


def _described(config, run_data):
    """config.json's content: the configuration and what the data was (a
    tfds:<name> set's normalization is computed, not configured)."""
    return dict(dataclasses.asdict(config), data=dataclasses.asdict(run_data.info))


def _read_log(folder):
    from nc_keras.callbacks import read_csv_log

    return read_csv_log(folder.log) if folder.log.exists() else None


def _conclude(folder):
    """Writes the figure, then the summary that marks the run as ended."""
    from nc_keras import plots

    history = _read_log(folder)
    loss = history["loss"][-1]
    status = "finished" if math.isfinite(loss) else "diverged"
    plots.plot_runs([folder.root], folder.figure)
    write_json(folder.summary, {"status": status, **summarize(history)})
    if status == "diverged":
        raise TrainingDiverged(
            f"training diverged: the loss was {loss} in epoch {history['epoch'][-1] + 1}, "
            f"so it stopped there; {folder.summary} marks the run \"diverged\". Try a "
            f"smaller learning rate; training into {folder.root} again starts it over."
        )
    return history


def measured_per_class(samples_per_class, nc_max_samples, imbalance_ratio, dataset_info, split):
    """Examples per class of the split NC is measured on (None: all).

    With `nc_max_samples`, the first nc_max_samples // K of each class (at
    most the configured ones): a balanced subset, where the first
    nc_max_samples in file order could be one class (the CIFAR-10 JPEG
    tarball is sorted by class). At least one per class; the
    NeuralCollapse callback caps the total at nc_max_samples. A long-tailed
    profile (`imbalance_ratio`) is kept as configured: a per-class cap
    would change its shape.
    """
    if nc_max_samples is None or imbalance_ratio is not None:
        return samples_per_class
    classes = dataset_info.num_classes
    share = max(1, nc_max_samples // classes)
    if isinstance(samples_per_class, (list, tuple)):
        return [min(count, share) for count in samples_per_class]
    if samples_per_class is not None:
        return min(samples_per_class, share)
    total = (dataset_info.split_sizes or {}).get(split)
    # A subset as large as the split is all of it.
    return share if total is None or share * classes < total else None


def built_architecture(model):
    """What `build_model` built, read off the model, for config.json.

    The feature dimension d is the architecture's unless `feature_dim` sets
    it; config.json records the actual one next to the options.
    """
    from nc_keras.models import count_trainable_params

    return {
        "name": model.name,
        "feature_dim": int(model.get_layer("features").output.shape[-1]),
        "trainable_params": count_trainable_params(model),
    }


def _fit(config, run_data, folder, callbacks, verbose):
    """Builds the model and its callbacks and trains (inside a distribution's scope)."""
    from nc_keras import callbacks as nc_callbacks

    model = build_model(config, run_data.num_classes, run_data.input_shape)
    write_json(folder.config, dict(_described(config, run_data),
                                   built=built_architecture(model)))
    lbfgs = config.optimizer == "lbfgs"
    # Order matters: TerminateOnNaN stops at the first NaN batch;
    # NeuralCollapse writes into `logs` before the loggers read them, and
    # the backup is saved last, once the epoch is logged.
    run_callbacks = [
        keras.callbacks.TerminateOnNaN(),
        nc_callbacks.NeuralCollapse(
            run_data.train_eval, run_data.test_eval, freq=config.nc_every,
            max_samples=config.nc_max_samples, history_dir=str(folder.nc_history),
            minority_classes=minority_classes(config, run_data.num_classes),
        ),
        nc_callbacks.EpochCSVLogger(str(folder.log)),
        keras.callbacks.TensorBoard(str(folder.tensorboard), write_graph=False),
    ]  # fmt: skip
    if not lbfgs:  # the paper's L-BFGS keeps its learning rate (Sec. 4.1)
        run_callbacks.insert(2, keras.callbacks.LearningRateScheduler(learning_rate_schedule(config)))
    if config.checkpoints:
        folder.checkpoints.mkdir(exist_ok=True)
        run_callbacks.append(keras.callbacks.ModelCheckpoint(folder.checkpoint_pattern))
    run_callbacks.append(keras.callbacks.BackupAndRestore(str(folder.backup)))
    run_callbacks.extend(callbacks)

    if lbfgs:
        fit_lbfgs(
            model, run_data.train, config.epochs, run_callbacks,
            weight_decay=config.weight_decay if config.decay == "all" else None,
            learning_rate=config.learning_rate, verbose=verbose,
            steps_per_epoch=run_data.steps_per_epoch,
            loss=build_loss(config),
        )  # fmt: skip
    else:
        model.compile(
            optimizer=build_optimizer(config),
            loss=build_loss(config),
            metrics=["accuracy"],
        )
        # The dataset orders itself (seeded per epoch); fit must not shuffle.
        model.fit(
            run_data.train, epochs=config.epochs, steps_per_epoch=run_data.steps_per_epoch,
            callbacks=run_callbacks, verbose=verbose, shuffle=False,
        )  # fmt: skip


def summarize(history):
    """The last epoch's values and the first-to-last NC1 ratio."""
    last = {key: values[-1] for key, values in history.items() if values}
    nc1 = [v for v in history.get("nc1", []) if not math.isnan(v)]
    if len(nc1) >= 2 and nc1[-1] > 0:
        last["nc1_first_over_last"] = nc1[0] / nc1[-1]
    last["epochs_completed"] = len(history.get("epoch", []))
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in last.items()}
