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
