import json
import math

import numpy as np
import pytest

import keras

from nc_keras.callbacks import read_csv_log
from nc_keras.train import TrainConfig, build_model, build_optimizer, run_directory, train


def test_decay_schemes(small_config):
    every = small_config(decay="all", weight_decay=5e-4).resolved()
    optimizer = build_optimizer(every)
    assert optimizer.weight_decay == 5e-4
    model = build_model(every, 10, (32, 32, 3))
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype("float32")
    model(x, training=True)
    assert model.losses == []  # all decay goes through the optimizer

    appendix = small_config(decay="features", weight_decay=0.1, lambda_h=0.2).resolved()
    assert build_optimizer(appendix).weight_decay is None  # no backbone decay
    model = build_model(appendix, 10, (32, 32, 3))
    model(x, training=True)
    head = model.get_layer("classifier")
    W, b = (keras.ops.convert_to_numpy(v) for v in (head.kernel, head.bias))
    features = keras.Model(model.input, model.get_layer("features").output)
    h = keras.ops.convert_to_numpy(features(x, training=True))
    expected = 0.05 * (np.sum(W**2) + np.sum(b**2)) + 0.1 * np.mean(np.sum(h**2, axis=1))
    total = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    np.testing.assert_allclose(total, expected, rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_run_writes_logs_with_nc_metrics_and_schedule(tmp_path, small_config, optimizer):
    config = small_config(optimizer=optimizer, lr_drop_every=1, classifier="etf",
                     learning_rate=0.01)
    history = train(config, verbose=0)
    out = tmp_path / "run"
    log = read_csv_log(out / "log.csv")
    assert log["epoch"] == [0, 1, 2]
    np.testing.assert_allclose(log["learning_rate"], [0.01, 0.001, 0.0001], rtol=1e-6)
    for key in ("nc1", "nc2", "nc3", "nc4", "ncc_mismatch", "val_nc1", "nc_accuracy", "val_nc_accuracy"):
        assert len(log[key]) == 3 and all(math.isfinite(v) for v in log[key]), key
    assert history["nc1"] == log["nc1"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_completed"] == 3
    config_written = json.loads((out / "config.json").read_text())
    assert config_written["optimizer"] == optimizer and config_written["batch_size"] == 100
    assert json.loads((out / "versions.json").read_text())["keras_backend"] == keras.backend.backend()
    assert (out / "figure.png").stat().st_size > 10_000
    assert not (out / "backup").exists()
    with pytest.raises(FileExistsError, match="finished run"):
        train(config, verbose=0)


class _Crash(keras.callbacks.Callback):
    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.batch is not None and self.current == self.epoch and batch == self.batch:
            raise RuntimeError("simulated crash")

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _tensorboard_steps(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    # Chronological: a resumed run writes a second event file, and files
    # opened within the same second need not be read in the order written.
    events = sorted(accumulator.Tensors(tag), key=lambda event: event.wall_time)
    return [event.step for event in events]


@pytest.mark.parametrize("crash", [dict(epoch=1), dict(epoch=2, batch=0)])
def test_interrupted_run_resumes_without_losing_or_repeating_epochs(tmp_path, small_config, crash):
    config = small_config(epochs=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, callbacks=[_Crash(**crash)], verbose=0)
    out = tmp_path / "run"
    assert (out / "backup").exists()
    before = read_csv_log(out / "log.csv")
    assert before["epoch"] == [0, 1]
    seen = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    history = train(config, callbacks=[recorder], verbose=0)
    assert seen == [2, 3]  # resumed, not restarted
    assert history["epoch"] == [0, 1, 2, 3]
    assert history["nc1"][:2] == before["nc1"]
    assert read_csv_log(out / "log.csv")["epoch"] == [0, 1, 2, 3]
    assert _tensorboard_steps(out / "tensorboard" / "train", "epoch_nc1") == [0, 1, 2, 3]
    assert _tensorboard_steps(out / "tensorboard" / "validation", "epoch_nc1") == [0, 1, 2, 3]
    assert not (out / "backup").exists()


def test_bad_configuration_is_refused(tmp_path, small_config):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train(small_config(optimizer="rmsprop"))
    with pytest.raises(ValueError, match="decay must be one of"):
        train(small_config(decay="backbone"))
    assert not (tmp_path / "run").exists()


def test_run_directory_is_output_dir_on_the_chief_and_a_subfolder_elsewhere(tmp_path):
    config = TrainConfig(dataset="mnist_subset", model="mlp", output_dir=str(tmp_path / "run"))
    assert run_directory(config) == tmp_path / "run"  # one process: rank 0
    assert run_directory(config, 0) == tmp_path / "run"
    assert run_directory(config, 3) == tmp_path / "run" / "process_3"
