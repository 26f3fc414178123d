"""One writer per run folder: `run.lock` refuses a second live writer and
is taken over from a dead one (a real holder process killed with SIGKILL)."""

import json
import os
import re
import subprocess
import sys
import time

import keras
import pytest

from nc_keras import data
from nc_keras.callbacks import read_csv_log
from nc_keras.cli import main
from nc_keras.cli.recipe import recipe_main
from nc_keras.run_folder import RunFolder, RunFolderLocked
from nc_keras.train import train

_HOLDER = """
import sys, time
from pathlib import Path
import keras
from nc_keras.train import TrainConfig, train

class Pause(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        Path(sys.argv[2]).write_text("paused")
        time.sleep(600)  # until killed

settings = dict(dataset="mnist_subset", model="mlp", width=16, depth=2, epochs=2, batch_size=50,
                samples_per_class=10, test_samples_per_class=5, seed=3, output_dir=sys.argv[1])
train(TrainConfig(**settings), callbacks=[Pause()], verbose=0)
"""


def test_lock_second_writer_is_refused_and_a_dead_holders_lock_taken_over(tmp_path, capsys):
    out, paused = tmp_path / "run", tmp_path / "paused"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), str(paused)],
                              env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
                              stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # the holder is in its first epoch's end
            if paused.exists() or holder.poll() is not None:
                break
            time.sleep(0.1)
        assert paused.exists(), holder.stderr.read()[-3000:] if holder.poll() is not None else "timeout"
        log = (out / "log.csv").read_text()
        # The same command again (a requeued job while the first one lives).
        args = ["train", "--dataset", "mnist_subset", "--model", "mlp", "--width", "16",
                "--depth", "2", "--epochs", "2", "--batch-size", "50", "--samples-per-class", "10",
                "--test-samples-per-class", "5", "--seed", "3", "--output-dir", str(out), "--quiet"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"{out} is in use by another run (pid {holder.pid} on host " in err
        assert (out / "log.csv").read_text() == log
        holder.kill()  # SIGKILL: no clean-up ran; the lock file names a dead holder
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert json.loads((out / "run.lock").read_text())["pid"] == holder.pid
    with pytest.warns(UserWarning, match=rf"taking over the lock of a run that is no longer "
                                         rf"running \(pid {holder.pid} on host "):
        assert main(args) == 0
    assert read_csv_log(out / "log.csv")["epoch"] == [0, 1]
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert not (out / "run.lock").exists()


def test_lock_refused_run_into_a_new_folder_leaves_nothing(tmp_path, small_config):
    out = tmp_path / "a" / "b"
    with RunFolder(out).lock():
        assert json.loads((out / "run.lock").read_text())["pid"] == os.getpid()
        # A second lock in the same process: flock locks are per open file.
        with pytest.raises(RunFolderLocked, match=rf"{re.escape(str(out))} is in use by another run \(pid {os.getpid()}"):
            with RunFolder(out).lock():
                pass
    assert not (tmp_path / "a").exists()
    # A failure before the first write leaves no folder either.
    with pytest.raises(data.DataNotFoundError):
        train(small_config(output_dir=str(tmp_path / "c" / "d"), dataset="folder",
                           data_dir=str(tmp_path / "none")), verbose=0)
    assert not (tmp_path / "c").exists()


def test_lock_recipe_into_a_held_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--dataset", "mnist_subset", "--epochs", "1", "--output-dir", str(out), "--quiet"]
    with RunFolder(out).lock():
        assert recipe_main("nc_optimizers", "a recipe", argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {out} is in use by another run (pid {os.getpid()}") and error.count("\n") == 1
    assert not out.exists()
