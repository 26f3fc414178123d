import os
import subprocess
import sys

import keras
import numpy as np
import pytest

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


def test_lbfgs_minimize_chunks_do_not_change_the_iterates():
    # `solve` records L-BFGS every `record_every` iterations, one compiled
    # chunk each: the chunks must continue one run, not restart it.
    import keras

    with backend.float64():
        target = backend.to_tensor(np.linspace(-1.0, 2.0, 6))
        weights = backend.to_tensor(1 + np.arange(6.0))

        def f(x):
            return keras.ops.sum((x - target) ** 2 * weights) + keras.ops.sum(x**4)

        value_and_grad = backend.compile(backend.value_and_grad(f))
        x0 = backend.to_tensor(np.zeros(6))
        whole = backend.lbfgs_minimize(value_and_grad, x0, 200, 1e-8)
        seen = []
        chunked = backend.lbfgs_minimize(
            value_and_grad, x0, 200, 1e-8, callback=lambda i, x, v: seen.append(i), callback_every=2
        )
    assert whole.converged and chunked.converged
    assert whole.iterations == chunked.iterations and seen[-1] == chunked.iterations
    assert np.allclose(backend.to_numpy(whole.position), backend.to_numpy(chunked.position), atol=1e-12)


@pytest.mark.skipif(backend.name() != "jax", reason="the JAX substrate of tfp")
def test_tfp_jax_substrate_loads_without_tensorflow():
    # The public L-BFGS on JAX uses tfp's JAX substrate, which must not pull
    # TensorFlow in (nor fail to import on jax >= 0.7).
    code = (
        "import sys, numpy as np, keras, nc_keras.backend as b\n"
        "with b.float64():\n"
        "    f = b.compile(b.value_and_grad(lambda x: keras.ops.sum((x - 1.0) ** 2)))\n"
        "    r = b.lbfgs_minimize(f, b.to_tensor(np.zeros(3)), 50, 1e-10)\n"
        "print(bool(r.converged), 'tensorflow' in sys.modules)"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "True False"
