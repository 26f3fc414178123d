"""The files of one training run, and how every file is written.

`nc_keras.train.train(config)` writes one run into a folder; this module is
the one place that names its files, so that the trainer, the callbacks, the
plots and the command line agree on them:

    config.json        the resolved TrainConfig, and under "built" what the model is
    versions.json      the software versions
    log.csv            one row per epoch (EpochCSVLogger)
    tensorboard/       TensorBoard event files
    nc_history/        nc_epoch_NNNN.npz per measurement (W, b, class means, metrics)
    checkpoints/       epoch_NNNN.keras, when checkpoints are asked for
    backup/            BackupAndRestore state while the run is unfinished
    summary.json       the last epoch's values and the status (finished, or
                       diverged: the loss became NaN), written when the run ends
    figure.png         the run's figure
    run.lock           while a process writes the folder: who (see `RunFolder.lock`)

Every file is written atomically (`nc_keras.io_utils`).
"""

import contextlib
import datetime
import json
import os
import re
import socket
import sys
import warnings
from pathlib import Path

# Re-exported: the run's writers were defined here before `io_utils` existed.
from nc_keras.io_utils import atomic_writer, save_npz, write_json, write_text  # noqa: F401

CONFIG = "config.json"
VERSIONS = "versions.json"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
NC_HISTORY = "nc_history"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"
SUMMARY = "summary.json"
FIGURE = "figure.png"
LOCK = "run.lock"

_NC_HISTORY_FILE = re.compile(r"nc_epoch_(\d+)\.npz")


class RunFolderLocked(RuntimeError):
    """Another live process writes the run folder (it holds its `run.lock`)."""


class RunFolder:
    """The paths of one run's files (see the module docstring)."""

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self):
        return f"RunFolder({str(self.root)!r})"

    def __fspath__(self):
        return os.fspath(self.root)

    config = property(lambda self: self.root / CONFIG)
    versions = property(lambda self: self.root / VERSIONS)
    log = property(lambda self: self.root / LOG)
    tensorboard = property(lambda self: self.root / TENSORBOARD)
    nc_history = property(lambda self: self.root / NC_HISTORY)
    checkpoints = property(lambda self: self.root / CHECKPOINTS)
    backup = property(lambda self: self.root / BACKUP)
    summary = property(lambda self: self.root / SUMMARY)
    figure = property(lambda self: self.root / FIGURE)
    lock_file = property(lambda self: self.root / LOCK)

    @property
    def checkpoint_pattern(self):
        """`keras.callbacks.ModelCheckpoint`'s file pattern, epoch counted from 1."""
        return str(self.checkpoints / "epoch_{epoch:04d}.keras")

    @property
    def status(self):
        """The summary's "status": "finished" or "diverged"; None while unfinished.

        A summary written before runs had a status counts as "finished".
        """
        if not self.summary.exists():
            return None
        return json.loads(self.summary.read_text()).get("status", "finished")

    @property
    def finished(self):
        """True when the run completed (its summary was written, no divergence)."""
        return self.status == "finished"

    def check_writable(self):
        """`ValueError` unless the folder exists or can be created, and is writable.

        Checked before a run writes anything, so that an output path that is
        a file, or lies in a read-only place, fails at once and cleanly.
        """
        path = self.root.absolute()
        while not path.exists():
            path = path.parent
        if not path.is_dir():
            raise ValueError(f"output directory {self.root}: {path} is a file, not a directory.")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"output directory {self.root}: {path} is not writable.")

    @contextlib.contextmanager
    def lock(self):
        """Holds the folder for this process: one writer per run folder.

        Takes an exclusive `flock` on `run.lock`, which also records the
        holder (pid, host, start time, command) for the message another
        process gets: `RunFolderLocked`, raised before anything is written.
        The operating system releases the lock when its holder dies, however
        it dies, so a lock file left by a killed run is stale: it is taken
        over, with a warning that names the dead holder. On exit the lock
        file is removed, and the folders created for the lock if nothing else was
        written into them.
        """
        created = [path for path in (self.root, *self.root.parents) if not path.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        handle, previous = self._acquire()
        try:
            if previous is not None:
                warnings.warn(
                    f"{self.root}: taking over the lock of a run that is no longer running "
                    f"({_holder(previous)}); its work is resumed from what it saved.",
                    stacklevel=3,
                )
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv),
            }
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(holder) + "\n")
            handle.flush()
            yield self
        finally:
            # Unlinked while still locked: a process waiting on this file
            # sees it replaced (see `_acquire`) and locks the new one.
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.lock_file)
            handle.close()
            for path in created:  # deepest first, each only if empty
                try:
                    path.rmdir()
                except OSError:
                    break

    def _acquire(self):
        """(open locked handle, the previous holder's record or None)."""
        import fcntl

        while True:
            handle = open(self.lock_file, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                record = _read_holder(handle.read())
                handle.close()
                raise RunFolderLocked(
                    f"{self.root} is in use by another run ({_holder(record)}); wait for it "
                    "to end, or choose another output directory."
                ) from None
            # The holder may have removed the file between our open and our
            # lock: then we locked a file no one else will see; start again.
            try:
                same = os.stat(self.lock_file).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                handle.seek(0)
                return handle, _read_holder(handle.read())
            handle.close()


def _read_holder(text):
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:  # a holder killed while writing it
        return {}


def _holder(record):
    if not record:
        return "holder unknown"
    return (f"pid {record.get('pid')} on host {record.get('host')}, started "
            f"{record.get('started')}: {record.get('command')}")


def nc_history_file(folder, epoch):
    """The path of the NC measurement of 1-based `epoch` in `folder`."""
    return Path(folder) / f"nc_epoch_{epoch:04d}.npz"


def nc_history_epochs(folder):
    """Sorted (epoch, path) pairs of the NC measurements saved in `folder`."""
    found = []
    for name in os.listdir(folder):
        match = _NC_HISTORY_FILE.fullmatch(name)
        if match:
            found.append((int(match.group(1)), Path(folder) / name))
    return sorted(found)
