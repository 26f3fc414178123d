"""Resuming an interrupted run: the same epochs as an uninterrupted one, other settings refused.

Kills are simulated by a callback that raises at a chosen point, and by
putting files back as the kill would have left them.
"""

import json
import logging
import math
import shutil

import keras
import numpy as np
import pytest

from nc_keras import data
from nc_keras.callbacks import read_csv_log
from nc_keras.train import TrainConfig, TrainingDiverged, resume, train
import re
from nc_keras.cli import main


def _config(tmp_path, name="run", **changes):
    settings = dict(
        dataset="mnist_subset", model="mlp", width=16, depth=2, epochs=3, batch_size=50,
        learning_rate=0.05, samples_per_class=10, test_samples_per_class=5, seed=3,
        output_dir=str(tmp_path / name),
    )  # fmt: skip
    settings.update(changes)
    return TrainConfig(**settings)


class _Crash(keras.callbacks.Callback):
    """Raises at the end of `epoch`, after the run's own callbacks (backup included)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated kill")


class _CopyBackup(keras.callbacks.Callback):
    """Copies the backup as it is at the end of `epoch` to `target`."""

    def __init__(self, epoch, source, target):
        super().__init__()
        self.epoch, self.source, self.target = epoch, source, target

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            shutil.copytree(self.source, self.target)


def _epochs_seen():
    seen = []
    return seen, keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))


def _tensorboard_steps(log_dir, tag="epoch_loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return sorted(event.step for event in accumulator.Tensors(tag))


def test_resume_refuses_other_settings_and_names_them(tmp_path):
    config = _config(tmp_path, epochs=2)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[_Crash(0)], verbose=0)
    written = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(ValueError, match="learning_rate 0.05 -> 0.1, weight_decay") as refused:
        train(_config(tmp_path, epochs=2, learning_rate=0.1, weight_decay=1e-3, width=32), verbose=0)
    assert "width 16 -> 32" in str(refused.value)
    assert (tmp_path / "run" / "config.json").read_text() == written
    # A new label names the run differently; it is the same run.
    seen, recorder = _epochs_seen()
    train(_config(tmp_path, epochs=2, label="renamed"), callbacks=[recorder], verbose=0)
    assert seen == [1]


def test_resume_after_a_kill_before_the_backup_matches_an_uninterrupted_run(tmp_path):
    # Augmentation and ncc_mismatch's "previous" class means are covered too.
    uninterrupted = train(_config(tmp_path, "whole", augment=True), verbose=0)

    config = _config(tmp_path, augment=True)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[_CopyBackup(0, out / "backup", tmp_path / "backup_0"), _Crash(1)],
              verbose=0)
    # As a kill between the logging of epoch 1 and its backup leaves it:
    # epoch 1 in log.csv, TensorBoard and nc_history, the backup of epoch 0.
    shutil.rmtree(out / "backup")
    shutil.copytree(tmp_path / "backup_0", out / "backup")
    assert read_csv_log(out / "log.csv")["epoch"] == [0, 1]

    seen, recorder = _epochs_seen()
    resumed = train(config, callbacks=[recorder], verbose=0)
    assert seen == [1, 2]
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-5, err_msg=key)
    for writer in ("train", "validation"):
        assert _tensorboard_steps(out / "tensorboard" / writer, "epoch_nc1") == [0, 1, 2], writer


def test_resume_data_epoch_depends_on_seed_and_epoch_only():
    def batches(epochs):
        stream = data.load("mnist_subset", "train", 20, samples_per_class=5, augment=True,
                           seed=3, epochs=epochs)  # fmt: skip
        return [(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)) for x, y in stream]

    from_start, from_two = batches(range(3)), batches(range(2, 3))
    assert len(from_start) == 9 and len(from_two) == 3
    for (x, y), (x2, y2) in zip(from_start[6:], from_two):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(from_start[0][1], from_start[3][1])  # reshuffled per epoch


def test_resume_after_fit_only_writes_the_summary(tmp_path):
    config = _config(tmp_path, epochs=2)
    history = train(config, verbose=0)
    out = tmp_path / "run"
    # A kill after fit removed the backup, before the summary and figure.
    (out / "summary.json").unlink()
    (out / "figure.png").unlink()
    seen, recorder = _epochs_seen()
    assert train(config, callbacks=[recorder], verbose=0) == history
    assert seen == []
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert (out / "figure.png").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
def test_resume_marks_a_diverged_run_and_trains_it_again(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(_config(tmp_path, learning_rate=1e30), verbose=0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    log = read_csv_log(out / "log.csv")
    assert not math.isfinite(log["loss"][-1])
    # Not a finished run: training again starts over, with other settings too.
    history = train(_config(tmp_path, learning_rate=0.05), verbose=0)
    assert history["epoch"] == [0, 1, 2] and all(map(math.isfinite, history["loss"]))
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_resume_prune_tensorboard_drops_later_steps_and_a_torn_record(tmp_path):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(4):
            tf.summary.scalar("epoch_loss", float(step), step=step)
    writer.close()
    (event_file,) = tmp_path.glob("*tfevents*")
    with open(event_file, "ab") as handle:
        handle.write(b"\x30\x00\x00\x00\x00\x00\x00\x00torn")  # a write cut short
    resume.prune_tensorboard(tmp_path, 2)
    assert _tensorboard_steps(tmp_path) == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == [event_file.name]


def test_recipe_removes_its_interrupted_figure_write(tmp_path):
    from nc_keras.train import train_variants

    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / ".figure.png-x1.tmp").write_bytes(b"")  # a kill during the figure's write
    (out / "a" / ".log.csv-y2.tmp").write_bytes(b"")  # the variant's, removed by its run
    train_variants(_config(tmp_path, epochs=1), [{"label": "a"}], out, verbose=0)
    assert (out / "figure.png").stat().st_size > 0
    assert not list(out.rglob("*.tmp"))


def _train_argv(config):
    """The `nc-keras train` command of a `_config`."""
    argv = ["train", "--quiet"]
    for name in ("dataset", "model", "width", "depth", "epochs", "batch_size", "learning_rate",
                 "samples_per_class", "test_samples_per_class", "seed", "output_dir"):
        argv += ["--" + name.replace("_", "-"), str(getattr(config, name))]
    return argv


@pytest.fixture(scope="module")
def _interrupted(tmp_path_factory):
    """A 3-epoch run killed after epoch 2 was logged and backed up."""
    tmp_path = tmp_path_factory.mktemp("interrupted")
    config = _config(tmp_path, epochs=3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[_Crash(1)], verbose=0)
    return tmp_path / "run"


def _copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return _config(tmp_path, epochs=3)


def test_resume_removes_the_interrupted_runs_temporary_files(_interrupted, tmp_path):
    config = _copy_of(_interrupted, tmp_path)
    out = tmp_path / "run"
    for left in (out / ".figure.png-k2j3.tmp", out / ".log.csv-9x.tmp",
                 out / "tensorboard" / "train" / ".pruning-77.tmp"):
        left.write_bytes(b"")  # a kill during the write
    seen, recorder = _epochs_seen()
    train(config, callbacks=[recorder], verbose=0)
    assert seen == [2]
    assert not list(out.rglob("*.tmp"))


def test_resume_torn_last_row_of_the_log_is_one_line(_interrupted, tmp_path, capsys):
    config = _copy_of(_interrupted, tmp_path)
    log = tmp_path / "run" / "log.csv"
    text = log.read_text()
    log.write_text(text[: text.rindex("\n", 0, -1) + 40] + "\n")  # the last row cut short
    assert main(_train_argv(config)) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"nc-keras train: error: {re.escape(str(log))} is torn: its line 3 has \d+ of "
                        r"the header's \d+ cells .*delete that line to train its epoch again on resume\n", err), err


@pytest.mark.parametrize("part", ["latest.weights.h5", "training_metadata.json"])
def test_resume_torn_backup_is_one_line_saying_what_to_do(_interrupted, tmp_path, capsys, part):
    config = _copy_of(_interrupted, tmp_path)
    torn = tmp_path / "run" / "backup" / part
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    assert main(_train_argv(config)) == 2
    err = capsys.readouterr().err
    backup = tmp_path / "run" / "backup"
    assert err.startswith(f"nc-keras train: error: the backup in {backup} is torn (")
    assert f"Delete {backup} and rerun to train the run again from its first epoch" in err
    assert err.count("\n") == 1


def test_full_disk_is_one_line_naming_the_folder_and_what_was_kept(_interrupted, tmp_path, capsys,
                                                                  monkeypatch):
    import errno

    from nc_keras.callbacks import EpochCSVLogger

    config = _copy_of(_interrupted, tmp_path)
    out = tmp_path / "run"

    def full(self, epoch, logs=None):
        raise OSError(errno.ENOSPC, "No space left on device", self.filename)

    monkeypatch.setattr(EpochCSVLogger, "on_epoch_end", full)
    assert main(_train_argv(config)) == 2
    err = capsys.readouterr().err
    assert err == (f"nc-keras train: error: cannot write {out / 'log.csv'}: No space left on device. "
                   f"{out} keeps its first 2 epoch(s), which rerunning the same command resumes "
                   "after (free space first).\n")
