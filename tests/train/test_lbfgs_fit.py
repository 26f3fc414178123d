import math

import numpy as np

import keras

from nc_keras.callbacks import read_csv_log
from nc_keras.train import train


def test_lbfgs_batch_minimizer_solves_a_convex_batch_problem():
    from nc_keras import backend

    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 5)).astype("float32")
    target = rng.standard_normal(30).astype("float32")

    def objective(position, matrix, rhs):
        residual = keras.ops.matmul(matrix, position) - rhs
        return 0.5 * keras.ops.sum(residual**2) + 0.05 * keras.ops.sum(position**2)

    minimize = backend.lbfgs_batch_minimizer(
        objective, history_size=10, iterations=20, learning_rate=1.0
    )
    start = keras.ops.zeros((5,), "float32")
    found = keras.ops.convert_to_numpy(
        minimize(start, keras.ops.convert_to_tensor(A), keras.ops.convert_to_tensor(target))
    )
    exact = np.linalg.solve(A.T @ A + 0.1 * np.eye(5), A.T @ target)
    np.testing.assert_allclose(found, exact, rtol=1e-3, atol=1e-4)


def test_lbfgs_training_logs_nc_metrics_and_learns(tmp_path, small_config):
    config = small_config(optimizer="lbfgs", batch_size=100, epochs=2, learning_rate=None)
    history = train(config, verbose=0)
    log = read_csv_log(tmp_path / "run" / "log.csv")
    assert log["epoch"] == [0, 1]
    assert "learning_rate" not in log  # L-BFGS keeps its rate: no schedule
    assert all(math.isfinite(v) for v in log["nc1"] + log["val_nc1"])
    assert history["nc_accuracy"][-1] > 0.9  # 200 MNIST images, fitted
    assert history["nc1"][-1] < history["nc1"][0]


def test_lbfgs_moving_statistics_are_those_of_the_final_weights():
    # Full-batch L-BFGS: after an epoch, BatchNorm's moving statistics must be
    # the batch's at the epoch's final weights (the eval-mode pass depends on
    # them), not a blend with the previous epoch's at older weights.
    from nc_keras.train import fit_lbfgs

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype("float32") * 3 + 1
    y = rng.integers(0, 3, 64).astype("int32")
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, name="hidden")(inputs)
    normalized = keras.layers.BatchNormalization(name="bn")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.ReLU()(normalized)))
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    fit_lbfgs(model, data, epochs=2, weight_decay=5e-2, iterations_per_batch=5, verbose=0)
    features = keras.ops.convert_to_numpy(model.get_layer("hidden")(x))
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), features.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), features.var(0), rtol=1e-3, atol=1e-5)
