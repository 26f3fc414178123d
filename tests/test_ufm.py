"""Ground truth for the unconstrained feature model (issue 5).

Theorem 3.1 gives f* in closed form: every solver on every backend must reach
it, and the Hessian checks of Theorem 3.2 must hold. Runs on the active
backend (KERAS_BACKEND).
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from nc_keras import backend, ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)
# (K, d, n): d > K (Theorem 3.2), a larger one, and d = K (the conjecture).
CONFIGS = [(4, 5, 10), (10, 20, 30), (10, 10, 50)]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These problems are tiny: on a shared 2-core machine torch's intra-op
    threads only contend (10x slower). Restored afterwards for other tests."""
    if backend.name() != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _f(W, H, b, labels, lambdas=LAMBDAS):
    with backend.float64():
        tensors = [backend.to_tensor(a) for a in (W, H, b)]
        return float(backend.to_numpy(ufm.objective(*tensors, labels, *lambdas)))


def _structured_value(rho, K, n, lambdas):
    """f along the structured family of Theorem 3.1, built explicitly."""
    lw, lh, _ = lambdas
    W, H, b, labels = ufm.construct_optimum(K, K + 1, n, *lambdas)
    scale = math.sqrt(rho) / np.linalg.norm(W[0])
    return _f(scale * W, scale * H, b, labels, lambdas)


@pytest.mark.parametrize("K, d, n", CONFIGS + [(4, 3, 10)])
def test_optimum_is_attained_by_construct_optimum(K, d, n):
    best = ufm.optimum(K, n, *LAMBDAS)
    W, H, b, labels = ufm.construct_optimum(K, d, n, *LAMBDAS, rotation_seed=3)
    # Also a float64 check: Keras's promotion silently drops to float32 in
    # some ops on JAX and torch, which would show up here as ~1e-8.
    assert abs(_f(W, H, b, labels) - best.value) <= 1e-14 * abs(best.value)
    assert np.allclose(np.linalg.norm(W, axis=1), best.w_norm)
    assert np.allclose(np.linalg.norm(H, axis=0), best.h_norm)
    # Moving off the optimum in any direction raises f.
    rng = np.random.default_rng(0)
    for _ in range(3):
        dW, dH, db = (1e-3 * rng.standard_normal(a.shape) for a in (W, H, b))
        assert _f(W + dW, H + dH, b + db, labels) > best.value


@pytest.mark.parametrize("K, n, lam", [(4, 10, 5e-3), (10, 30, 5e-3), (10, 50, 5e-3), (3, 5, 1e-4)])
def test_optimum_matches_one_dimensional_minimization(K, n, lam):
    lambdas = (lam, 2 * lam, lam)
    best = ufm.optimum(K, n, *lambdas)
    search = minimize_scalar(
        lambda rho: _structured_value(rho, K, n, lambdas),
        bounds=(0.0, 4 * best.w_norm**2 + 1),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert abs(search.fun - best.value) <= 1e-10 * abs(best.value)
    assert abs(math.sqrt(search.x) - best.w_norm) <= 1e-4 * best.w_norm
    assert best.h_norm == pytest.approx(math.sqrt(lambdas[0] / (lambdas[1] * n)) * best.w_norm)


def test_optimum_at_the_origin_when_penalties_are_large():
    K, n, lambdas = 10, 30, (0.5, 0.5, 0.5)
    best = ufm.optimum(K, n, *lambdas)
    assert best.at_origin and best.w_norm == 0 and best.value == pytest.approx(math.log(K))
    W, H, b, labels = ufm.construct_optimum(K, 12, n, *lambdas)
    assert not np.any(W) and not np.any(H)
    assert _f(W, H, b, labels, lambdas) == pytest.approx(math.log(K), abs=1e-15)
    result = ufm.solve(K, 12, n, *lambdas, method="gd", record_metrics=False)
    assert abs(result.final["relative_gap"]) <= 1e-8


def test_optimum_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lambda_w > 0"):
        ufm.optimum(4, 10, 0.0, 1e-3, 1e-3)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        ufm.optimum(1, 10, 1e-3, 1e-3, 1e-3)
    with pytest.raises(ValueError, match="unknown method"):
        ufm.solve(4, 5, 10, method="newton")


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


def test_hessian_at_origin_is_a_strict_saddle():
    K, d, n = 4, 5, 10
    _, _, _, labels = ufm.construct_optimum(K, d, n, *LAMBDAS)
    zeros = (np.zeros((K, d)), np.zeros((d, K * n)), np.zeros(K))
    eigen = ufm.hessian_min_eigenvalue(*zeros, labels, *LAMBDAS, dense_up_to=0)
    # [[lW I, G], [G^T, lH I]] block with |G| = 1/(K sqrt(n)).
    expected = -(1 / (K * math.sqrt(n)) - math.sqrt(LAMBDAS[0] * LAMBDAS[1]))
    assert eigen.eigenvalues[0] == pytest.approx(expected, rel=1e-6)
    f0 = _f(*zeros, labels)
    for t in (1e-3, 1e-2, 1e-1):
        moved = [t * part for part in eigen.split(0)]
        assert _f(*moved, labels) < f0


@pytest.mark.parametrize("K, d", [(4, 5), (4, 4), (4, 3)])
def test_hessian_at_optimum_has_only_rotation_zero_modes(K, d):
    n = 10
    W, H, b, labels = ufm.construct_optimum(K, d, n, *LAMBDAS, rotation_seed=1)
    zero_modes = ufm.rotation_zero_modes(K, d, LAMBDAS[2])
    assert zero_modes == d * (d - 1) // 2 - (d - K + 1) * (d - K) // 2
    eigen = ufm.hessian_min_eigenvalue(W, H, b, labels, *LAMBDAS, k=zero_modes + 1)
    values = eigen.eigenvalues
    assert values.min() >= -1e-10
    assert np.all(np.abs(values[:zero_modes]) <= 1e-10)
    assert values[zero_modes] > 1e-3  # every other direction is curved up
    # The zero modes are the infinitesimal rotations (W A^T, A H), A skew.
    A = np.zeros((d, d))
    A[0, 1], A[1, 0] = 1.0, -1.0
    tangent = np.concatenate([(W @ A.T).ravel(), (A @ H).ravel(), np.zeros(K)])
    tangent /= np.linalg.norm(tangent)
    inside = eigen.eigenvectors[:, :zero_modes]
    assert np.linalg.norm(inside.T @ tangent) == pytest.approx(1.0, abs=1e-6)


def test_hessian_lanczos_at_a_solved_point_is_nonnegative():
    result = ufm.solve(10, 20, 30, method="lbfgs", seed=5, record_metrics=False)
    eigen = ufm.hessian_min_eigenvalue(result.W, result.H, result.b, result.labels, *LAMBDAS)
    assert eigen.eigenvalues[0] >= -1e-8


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(0)
    W, H, b = ufm.random_start(3, 4, 5, seed=1)
    labels = ufm.class_labels(3, 5)
    with backend.float64():
        problem = ufm._Problem(3, 4, 5, LAMBDAS)
        x = problem.flatten(W, H, b)
        v = backend.to_tensor(rng.standard_normal(x.shape[0]))
        product = backend.to_numpy(problem.hvp()(x, v))
        _, g_plus = problem.value_and_grad(x + 1e-5 * v)
        _, g_minus = problem.value_and_grad(x - 1e-5 * v)
    difference = (backend.to_numpy(g_plus) - backend.to_numpy(g_minus)) / 2e-5
    assert np.allclose(product, difference, atol=1e-7)
    assert labels.shape == (15,)


def test_lbfgs_minimize_chunks_do_not_change_the_iterates():
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


def test_landscape_table_and_figures(tmp_path):
    result = ufm.landscape(4, 5, 10, methods=("gd", "lbfgs"), starts=2, progress=False)
    assert len(result.rows) == 4 and result.all_reached()
    assert "(f-f*)/f*" in result.table()
    assert ufm.plot_landscape(result, tmp_path / "landscape.png").stat().st_size > 1000
    assert ufm.plot_trajectory(result.runs[0], tmp_path / "run.png").stat().st_size > 1000


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
