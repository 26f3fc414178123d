import numpy as np

import keras

from nc_keras import backend


def test_lbfgs_minimize_solves_a_ridge_problem_on_every_backend():
    # f(x) = 1/2 ||A x - t||^2 + 1/2 ||x||^2, minimized at (A^T A + I)^-1 A^T t.
    rng = np.random.default_rng(0)
    A, target = rng.standard_normal((12, 4)), rng.standard_normal(12)
    seen = []
    with backend.float64():
        matrix, rhs = backend.to_tensor(A), backend.to_tensor(target)

        def objective(x):
            # Not ops.matmul: on torch it computes float64 in float32.
            residual = keras.ops.einsum("ij,j->i", matrix, x) - rhs
            return 0.5 * keras.ops.sum(residual**2) + 0.5 * keras.ops.sum(x**2)

        value_and_grad = backend.compile(backend.value_and_grad(objective))
        result = backend.lbfgs_minimize(
            value_and_grad, backend.to_tensor(np.zeros(4)), tolerance=1e-10,
            callback=lambda iterations, x, value: seen.append(iterations), callback_every=2,
        )  # fmt: skip
        position = backend.to_numpy(result.position)
    assert result.converged and seen and seen[-1] == result.iterations
    np.testing.assert_allclose(position, np.linalg.solve(A.T @ A + np.eye(4), A.T @ target), atol=1e-8)
