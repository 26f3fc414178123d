"""`solve`: every method reaches the exact f* of Theorem 3.1 on every backend."""

import os
import subprocess
import sys

import numpy as np
import pytest

from nc_keras import backend, ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)
# (K, d, n): d > K (Theorem 3.2), a larger one, and d = K (the conjecture).
CONFIGS = [(4, 5, 10), (10, 20, 30), (10, 10, 50)]


@pytest.mark.parametrize("K, d, n", CONFIGS)
def test_every_solver_reaches_the_exact_optimum(K, d, n):
    result = ufm.landscape(K, d, n, *LAMBDAS, starts=1, seed=11, progress=False)
    table = result.table()
    for row in result.rows:
        assert abs(row["relative_gap"]) <= 1e-8, table
        assert row["nc2"] <= 1e-4 and row["nc3"] <= 1e-4, table
        assert row["nc1"] <= 1e-8 and row["nc4"] <= 1e-4, table
    assert result.all_reached()
    minibatch = [run for run in result.runs if run.method in ("sgd", "adam")]
    # The polish is a short finish, not the whole run.
    assert all(0 < run.polish_steps < 500 for run in minibatch)
    assert all(run.gap_before_polish < 1e-2 * abs(run.optimum.value) for run in minibatch)


def test_gap_tolerance_stops_early_and_trajectory_is_recorded():
    full = ufm.solve(4, 5, 10, method="gd", seed=2)
    early = ufm.solve(4, 5, 10, method="gd", seed=2, gap_tolerance=1e-3)
    assert early.steps < full.steps
    assert abs(early.final["relative_gap"]) <= 1e-3 < abs(early.trajectory[-2]["relative_gap"])
    steps = [row["step"] for row in full.trajectory]
    assert steps == sorted(steps) and steps[0] == 0
    assert {"objective", "gap", "nc1", "nc2", "nc3", "nc4", "seconds"} <= set(full.final)


def test_solve_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="unknown method"):
        ufm.solve(4, 5, 10, method="newton")


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
    code = (
        "import sys, nc_keras.backend as b; b._tfp_jax(); "
        "print('tensorflow' in sys.modules)"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
