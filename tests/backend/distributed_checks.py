"""Multi-device and multi-process checks, run by test_distribute.py.

Each check needs a fresh process: the number of devices is fixed when a
backend starts (XLA_FLAGS on JAX, logical devices on TensorFlow), and
`jax.distributed` must start before any JAX computation.

    python tests/backend/distributed_checks.py devices OUTPUT_DIR
        two local devices (KERAS_BACKEND=jax with XLA_FLAGS=
        --xla_force_host_platform_device_count=2, or tensorflow);
    python tests/backend/distributed_checks.py process RANK PORT OUTPUT_DIR
        one of two JAX processes with one CPU device each, on localhost.

The last line printed is "RESULT " and a JSON object: the relative
differences between single-device and data-parallel NC metrics (same
weights, same data) and the NC columns of a short `train()` run.
"""

import json
import math
import sys

import numpy as np

# 203 samples in batches of 50: the last batch (3) is partial and odd, so it
# splits neither over the batch size nor over two devices or processes.
NUM_SAMPLES, NUM_TEST, BATCH, NUM_CLASSES = 203, 61, 50, 4
IMAGE_SHAPE = (2, 3, 1)


def _split_cpu_for_tensorflow():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _data(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (NUM_CLASSES,) + IMAGE_SHAPE)
    y = rng.integers(0, NUM_CLASSES, NUM_SAMPLES + NUM_TEST)
    x = (centres[y] + rng.normal(0, 1, (len(y),) + IMAGE_SHAPE)).astype("float32")
    return (x[:NUM_SAMPLES], y[:NUM_SAMPLES]), (x[NUM_SAMPLES:], y[NUM_SAMPLES:])


def _model():
    from nc_keras import models

    # With BatchNorm (inference mode in the pass) and a bias.
    return models.mlp(width=16, depth=2, num_classes=NUM_CLASSES, input_shape=IMAGE_SHAPE)


def _measurements(model, train_data, test_data):
    """NC metrics of `model`: offline (exact NCC) and through the callback."""
    import tensorflow as tf

    from nc_keras import callbacks, collapse

    # Two intermediate layers too: their statistics merge across processes.
    layers = ["relu1", "fc2"]
    results = {"measure_model": collapse.measure_model(
        model, train_data, batch_size=BATCH, layers=layers)}
    # The callback's kinds of data: a tuple, and a tf.data pipeline whose last
    # batch is partial; the second call uses the first call's class means.
    test_ds = tf.data.Dataset.from_tensor_slices(test_data).batch(BATCH)
    callback = callbacks.NeuralCollapse(train_data, test_ds, batch_size=BATCH, layers=layers)
    callback.set_model(model)
    for epoch in (0, 1):
        logs = {}
        callback.on_epoch_end(epoch, logs)
        results[f"callback_{epoch}"] = {key: float(value) for key, value in logs.items()}
    return results


def _relative_differences(single, parallel):
    differences = {}
    for name, metrics in single.items():
        for key, value in metrics.items():
            other = parallel[name][key]
            if math.isnan(value) and math.isnan(other):
                continue
            differences[f"{name}/{key}"] = abs(other - value) / max(abs(value), 1e-300)
    return differences


def compare(seed=0):
    """Single-device vs data-parallel metrics of the same weights on the same data."""
    import keras

    from nc_keras import backend

    train_data, test_data = _data(seed)
    keras.utils.set_random_seed(seed)
    model = _model()
    single = _measurements(model, train_data, test_data)
    replication = backend.replicate("data_parallel")
    with replication.scope:
        parallel_model = _model()
        parallel_model.set_weights(model.get_weights())
        parallel = _measurements(parallel_model, train_data, test_data)
    differences = _relative_differences(single, parallel)
    return {
        "replicas": replication.replicas,
        "processes": replication.process_count,
        "max_relative_difference": max(differences.values()),
        "worst": max(differences, key=differences.get),
        "num_compared": len(differences),
        "nc1": single["measure_model"]["nc1"],
    }


def short_run(output_dir, **options):
    """Two epochs of `train()`: 130 training samples, batches of 64."""
    from nc_keras.callbacks import read_csv_log
    from nc_keras.train import TrainConfig, run_directory, train

    config = TrainConfig(
        dataset="mnist_subset", model="mlp", width=16, depth=1, epochs=2, batch_size=64,
        samples_per_class=13, test_samples_per_class=7, output_dir=output_dir, **options,
    )  # fmt: skip
    train(config, verbose=0)
    run_dir = run_directory(config)  # process i > 0 writes its own folder
    log = read_csv_log(run_dir / "log.csv")
    return {key: log[key] for key in ("nc1", "nc2", "nc3", "nc4", "val_nc1", "nc_accuracy")}, str(run_dir)


def main(argv):
    import os

    import keras

    if argv[0] == "devices":
        if keras.backend.backend() == "tensorflow":
            _split_cpu_for_tensorflow()
        result = compare()
        result["log"], result["run_dir"] = short_run(argv[1], devices=2)
    elif argv[0] == "process":
        rank, port, output_dir = int(argv[1]), int(argv[2]), argv[3]
        # train() starts jax.distributed, so it runs first.
        options = dict(coordinator=f"localhost:{port}", num_processes=2, process_id=rank)
        log, run_dir = short_run(output_dir, **options)
        result = compare()
        result["log"], result["run_dir"] = log, run_dir
        result["files"] = sorted(os.listdir(output_dir))
    else:
        raise SystemExit(__doc__)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
