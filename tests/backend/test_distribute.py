"""Data-parallel training and NC measurement over devices and processes.

The multi-device checks run in subprocesses (tests/backend/distributed_checks.py),
since a backend fixes its devices when it starts: with KERAS_BACKEND=jax,
two CPU devices from XLA_FLAGS and two single-device processes joined by
jax.distributed on localhost; with tensorflow, two logical CPU devices. Each
runs once per `make test`, in the pass of its own backend.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from nc_keras import backend, collapse
from nc_keras.cli import main
from nc_keras.train import TrainConfig, train

CHECKS = Path(__file__).with_name("distributed_checks.py")
TOLERANCE = 1e-6  # relative, single device vs data parallel


def _environment(**changes):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("KERAS_DISTRIBUTION_") and key != "TF_CONFIG"}
    env.update(changes)
    return env


def _result(completed):
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stdout[-3000:] + completed.stderr[-5000:]
    return json.loads(lines[-1][len("RESULT "):])


def _check_run(result):
    assert result["replicas"] == 2
    # Every metric of measure_model and of the callback (train and val_,
    # exact and previous-means NCC) equals the single-device value.
    assert result["num_compared"] >= 40
    assert result["max_relative_difference"] <= TOLERANCE, result["worst"]
    log = result["log"]
    for key in ("nc1", "nc2", "nc3", "nc4", "val_nc1", "nc_accuracy"):
        assert len(log[key]) == 2 and all(np.isfinite(log[key])), key


@pytest.mark.skipif(
    keras.backend.backend() not in ("jax", "tensorflow"),
    reason="runs in the jax and tensorflow passes (torch has no data-parallel fit)",
)
def test_two_devices_measure_what_one_device_measures(tmp_path):
    backend_name = keras.backend.backend()
    env = _environment(KERAS_BACKEND=backend_name)
    if backend_name == "jax":
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
        ).strip()
    completed = subprocess.run(
        [sys.executable, str(CHECKS), "devices", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    result = _result(completed)
    assert result["processes"] == 1
    _check_run(result)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="runs in the jax pass")
def test_two_jax_processes_measure_what_one_process_measures(tmp_path):
    port, out = _free_port(), tmp_path / "run"
    env = _environment(KERAS_BACKEND="jax")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    workers = [
        subprocess.Popen(
            [sys.executable, str(CHECKS), "process", str(rank), str(port), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    results = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            results.append(_result(subprocess.CompletedProcess(worker.args, worker.returncode, stdout, stderr)))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for result in results:
        assert result["processes"] == 2
        _check_run(result)
    # Both processes log the same numbers; process 0 writes output_dir, the
    # other its own folder inside it.
    assert [result["run_dir"] for result in results] == [str(out), str(out / "process_1")]
    assert results[0]["log"] == results[1]["log"]
    assert (out / "log.csv").exists() and (out / "process_1" / "log.csv").exists()


class _Shards:
    """Stands in for P processes x R devices: records what each predict gets."""

    def __init__(self, processes, local):
        self.processes, self.local, self.calls = processes, local, []

    def predictor(self, rank):
        def predict(x):
            self.calls.append((rank, len(x)))
            features = x.reshape(len(x), -1)
            return [features, features[:, :2] ** 2]  # features, one intermediate layer

        return backend.ShardedPredictor(predict, None, self.local, rank, self.processes)


@pytest.mark.parametrize("max_samples", [None, 151])
def test_process_shares_cover_every_sample_once(max_samples):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(203, 6)).astype("float32")
    y = rng.integers(0, 3, 203)
    options = dict(batch_size=50, max_samples=max_samples)
    W = np.hstack([np.eye(3), -np.eye(3)])  # logits = features[:, :3] - features[:, 3:]
    expected, expected_layer = collapse.accumulate(
        _Shards(1, 1).predictor(0), (x, y), W, **options)

    shards = _Shards(processes=3, local=2)
    parts = [collapse.accumulate(shards.predictor(rank), (x, y), W, **options)
             for rank in range(3)]
    # Every process ran the same padded shapes, a multiple of its 2 devices.
    sizes = [[size for rank, size in shards.calls if rank == r] for r in range(3)]
    assert sizes[0] == sizes[1] == sizes[2] and all(size % 2 == 0 for size in sizes[0])

    # The exchange: each process's vector, then all of them to process 0.
    vectors = []

    def keep(vector):
        vectors.append(vector)
        return vector[None]  # alone, a process keeps its statistics

    for part, _ in parts:
        assert collapse.gather_processes(part, keep) is part
    merged = collapse.gather_processes(parts[0][0], lambda vector: np.stack(vectors))
    assert merged.num_samples == expected.num_samples == (max_samples or 203)
    np.testing.assert_array_equal(merged.counts, expected.counts)
    assert merged.num_predicted == expected.num_predicted
    assert merged.num_correct == expected.num_correct
    np.testing.assert_allclose(merged.means, expected.means, rtol=1e-12)
    np.testing.assert_allclose(merged.scatter, expected.scatter, rtol=1e-12, atol=1e-12)
    # The intermediate layer's statistics merge the same way.
    layers = [layer for _, layer in parts]
    merged_layer = layers[0]
    for layer in layers[1:]:
        merged_layer = merged_layer.merge(layer)
    np.testing.assert_array_equal(merged_layer.counts, expected_layer.counts)
    np.testing.assert_allclose(merged_layer.scatter, expected_layer.scatter, rtol=1e-12)


def test_strategy_and_device_checks():
    with pytest.raises(ValueError, match="strategy must be one of"):
        TrainConfig(strategy="mirrored").resolved()
    with pytest.raises(ValueError, match="devices must be"):
        TrainConfig(devices=0).resolved()
    with pytest.raises(ValueError, match="strategy 'none' trains on one device"):
        backend.replicate("none", devices=2)
    with pytest.raises(ValueError, match="give coordinator"):
        backend.replicate("auto", num_processes=2, process_id=0)
    # One device: no distribution at all, whatever the backend.
    assert backend.replicate("auto").replicas == 1
    assert backend.replicate("none", devices=1).replicas == 1


def test_more_devices_than_the_machine_has_is_a_clear_error(capsys, tmp_path):
    hint = {"jax": "xla_force_host_platform_device_count", "tensorflow": "set_logical_device",
            "torch": "KERAS_BACKEND=jax"}[keras.backend.backend()]
    with pytest.raises(ValueError, match=hint):
        backend.replicate("auto", devices=64)
    # The CLI prints it on one line, without a traceback.
    code = main(["train", "--dataset", "mnist_subset", "--model", "mlp", "--devices", "64",
                 "--output-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    error = capsys.readouterr().err
    assert hint in error and "Traceback" not in error


def test_training_checks_the_replicas(monkeypatch, tmp_path):
    # As if on several devices: what train() refuses before building anything.
    monkeypatch.setattr(
        backend, "replicate", lambda *args: backend.Replication(contextlib.nullcontext(), 4)
    )
    settings = dict(dataset="mnist_subset", model="mlp", output_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="L-BFGS loop runs on one device"):
        train(TrainConfig(optimizer="lbfgs", **settings))
    with pytest.raises(ValueError, match="e.g. 104"):
        train(TrainConfig(batch_size=101, **settings))


def test_multi_host_options_name_what_this_backend_offers(monkeypatch):
    name = keras.backend.backend()
    if name == "jax":
        pytest.skip("jax runs several processes (test_two_jax_processes_...)")
    if name == "tensorflow":
        monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}}')
        with pytest.raises(ValueError, match="MultiWorkerMirroredStrategy"):
            backend.replicate("auto")
        monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ValueError, match="TF_CONFIG" if name == "tensorflow" else "torch"):
        backend.replicate("auto", coordinator="localhost:1234", num_processes=2, process_id=0)
