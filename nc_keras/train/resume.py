"""What a rerun finds in an unfinished run folder, and how it continues it.

`train(config)` into a folder that holds an interrupted run resumes it:
`keras.callbacks.BackupAndRestore` restores the weights, the optimizer state
and the epoch. The functions here make the continuation the same run as an
uninterrupted one, whatever point the interruption hit:

- `check_same_run`: a rerun with other settings is refused, since the
  folder's `config.json` would otherwise claim them for every epoch;
- `resume_epoch`: the first epoch the rerun trains, from the backup;
- `fit_ended`: all epochs were trained and logged, only the summary is
  missing (a kill after `fit` removed the backup): nothing is retrained;
- `prune_tensorboard`: drops the TensorBoard summaries of the epochs the
  rerun trains again, so that no step is logged twice;
- `start_over`: clears a folder whose run cannot be continued;
- `check_backup`: a torn backup is refused with what to do;
- `remove_staging_files`: the temporary files an interrupted write left.

`log.csv` needs no repair (`EpochCSVLogger` replaces the rows of epochs it
logs again), nor does `nc_history/` (its files are replaced whole).
"""

import json
import math
import os
import shutil
from pathlib import Path

from nc_keras.backend import internals

# Fields a rerun may change: they name the run or say where it lives, and
# do not change what is trained or logged.
FREE_FIELDS = ("label", "output_dir", "coordinator", "checkpoints")


def check_same_run(folder, config):
    """`ValueError` naming the settings where `config` differs from the folder's run.

    Compares the resolved configuration with `config.json`, except
    `FREE_FIELDS`. A key missing from `config.json` (written by an older
    nc_keras, before the field existed) is not compared.
    """
    import dataclasses

    stored = json.loads(folder.config.read_text())
    # Through JSON, as config.json was written, so that e.g. a tuple and the
    # list it became compare equal.
    current = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    differ = [
        key for key, value in current.items()
        if key not in FREE_FIELDS and key in stored and stored[key] != value
    ]  # fmt: skip
    if differ:
        changes = ", ".join(f"{key} {stored[key]!r} -> {current[key]!r}" for key in differ)
        raise ValueError(
            f"{folder.root} holds an unfinished run with other settings ({changes}); "
            "rerun it with its own settings (config.json) to resume it, or choose "
            "another output directory, or delete this one to start over."
        )


def resume_epoch(folder):
    """The 0-based epoch a rerun starts at: the backup's, or 0 without one."""
    metadata = folder.backup / internals.BACKUP_METADATA_FILE
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def fit_ended(folder, epochs, log):
    """True when `fit` ended (all epochs logged, or stopped by a NaN loss).

    `log` is the folder's `log.csv`, column-wise (None when absent). A
    backup that still has epochs to train means the fit did not end.
    """
    if not log or not log.get("epoch"):
        return False
    if folder.backup.exists() and resume_epoch(folder) < epochs:
        return False
    logged = log["epoch"]
    if logged != list(range(len(logged))):
        return False
    return len(logged) == epochs or not math.isfinite(log["loss"][-1])


def prune_tensorboard(log_dir, first_step):
    """Removes the summaries at steps >= `first_step` from the event files under `log_dir`.

    Event files cannot be edited in place: each affected file is rewritten
    without those events (through a temporary file and a rename, so a kill
    leaves the old file or the new one). A record torn by a kill during its
    write, at the end of a file, is dropped too.
    """
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    for path in sorted(Path(log_dir).rglob("*tfevents*")):
        kept, dropped = [], False
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                raw = record.numpy()
                event = event_pb2.Event.FromString(raw)
                if event.HasField("summary") and event.step >= first_step:
                    dropped = True
                else:
                    kept.append(raw)
        except tf.errors.DataLossError:
            dropped = True
        if dropped:
            # No "tfevents" in the staging name: TensorBoard must not read it.
            staging = path.with_name(f".pruning-{os.getpid()}.tmp")
            with tf.io.TFRecordWriter(str(staging)) as writer:
                for raw in kept:
                    writer.write(raw)
            os.replace(staging, path)


def start_over(folder):
    """Removes what an earlier attempt left in `folder` (not `config.json`)."""
    for path in (folder.backup, folder.tensorboard, folder.nc_history, folder.checkpoints):
        shutil.rmtree(path, ignore_errors=True)
    for path in (folder.log, folder.summary, folder.figure):
        path.unlink(missing_ok=True)


def check_backup(folder):
    """`ValueError` when the folder's backup does not read whole, saying what to do.

    A kill (or a full disk) during `BackupAndRestore`'s save, which is not
    atomic, can leave its weights or its epoch torn; Keras would fail deep
    in h5py. Every dataset of the weights file is read once here.
    """
    if not folder.backup.exists():
        return
    weights = folder.backup / internals.BACKUP_WEIGHTS_FILE
    metadata = folder.backup / internals.BACKUP_METADATA_FILE
    try:
        if weights.exists() or metadata.exists():
            int(json.loads(metadata.read_text())["epoch"])
            _read_h5(weights)
    except Exception as error:  # noqa: BLE001 - h5py, OS and JSON errors alike
        raise ValueError(
            f"the backup in {folder.backup} is torn ({type(error).__name__}: {error}), so the "
            f"run cannot resume from it. Delete {folder.backup} and rerun to train the run "
            f"again from its first epoch in {folder.root} (its last good weights, if "
            f"checkpoints were kept, are the newest file in {folder.checkpoints})."
        ) from None


def _read_h5(path):
    import h5py

    def read(name, item):
        if isinstance(item, h5py.Dataset):
            item[()]

    with h5py.File(path, "r") as handle:
        handle.visititems(read)


def remove_staging_files(folder):
    """Removes the temporary files of writes an interruption cut (`atomic_writer`'s
    ".<name>-*.tmp", the TensorBoard pruning's ".pruning-*.tmp"); returns them.

    Only under the folder's lock: no other process is writing them.
    """
    removed = sorted(folder.root.rglob(".*.tmp"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
