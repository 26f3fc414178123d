"""Theorem 3.1: the closed-form f* of eq. (3) is attained and is the minimum."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from nc_keras import ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)
# (K, d, n): d > K (Theorem 3.2), a larger one, and d = K (the conjecture).
CONFIGS = [(4, 5, 10), (10, 20, 30), (10, 10, 50)]


@pytest.mark.parametrize("K, d, n", CONFIGS + [(4, 3, 10)])
def test_optimum_is_attained_by_construct_optimum(K, d, n, f_value):
    best = ufm.optimum(K, n, *LAMBDAS)
    W, H, b, labels = ufm.construct_optimum(K, d, n, *LAMBDAS, rotation_seed=3)
    # Also a float64 check: Keras's promotion silently drops to float32 in
    # some ops on JAX and torch, which would show up here as ~1e-8.
    assert abs(f_value(W, H, b, labels) - best.value) <= 1e-14 * abs(best.value)
    assert np.allclose(np.linalg.norm(W, axis=1), best.w_norm)
    assert np.allclose(np.linalg.norm(H, axis=0), best.h_norm)
    # Moving off the optimum in any direction raises f.
    rng = np.random.default_rng(0)
    for _ in range(3):
        dW, dH, db = (1e-3 * rng.standard_normal(a.shape) for a in (W, H, b))
        assert f_value(W + dW, H + dH, b + db, labels) > best.value


@pytest.mark.parametrize("K, n, lam", [(4, 10, 5e-3), (10, 30, 5e-3), (10, 50, 5e-3), (3, 5, 1e-4)])
def test_optimum_matches_one_dimensional_minimization(K, n, lam, f_value):
    lambdas = (lam, 2 * lam, lam)
    best = ufm.optimum(K, n, *lambdas)
    W, H, b, labels = ufm.construct_optimum(K, K + 1, n, *lambdas)

    def structured_value(rho):
        """f along the structured family of Theorem 3.1, built explicitly."""
        scale = math.sqrt(rho) / np.linalg.norm(W[0])
        return f_value(scale * W, scale * H, b, labels, lambdas)

    search = minimize_scalar(
        structured_value,
        bounds=(0.0, 4 * best.w_norm**2 + 1),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert abs(search.fun - best.value) <= 1e-10 * abs(best.value)
    assert abs(math.sqrt(search.x) - best.w_norm) <= 1e-4 * best.w_norm
    assert best.h_norm == pytest.approx(math.sqrt(lambdas[0] / (lambdas[1] * n)) * best.w_norm)


def test_optimum_at_the_origin_when_penalties_are_large(f_value):
    K, n, lambdas = 10, 30, (0.5, 0.5, 0.5)
    best = ufm.optimum(K, n, *lambdas)
    assert best.at_origin and best.w_norm == 0 and best.value == pytest.approx(math.log(K))
    W, H, b, labels = ufm.construct_optimum(K, 12, n, *lambdas)
    assert not np.any(W) and not np.any(H)
    assert f_value(W, H, b, labels, lambdas) == pytest.approx(math.log(K), abs=1e-15)
    result = ufm.solve(K, 12, n, *lambdas, method="gd", record_metrics=False)
    assert abs(result.final["relative_gap"]) <= 1e-8


def test_optimum_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lambda_w > 0"):
        ufm.optimum(4, 10, 0.0, 1e-3, 1e-3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        ufm.optimum(1, 10, 1e-3, 1e-3, 1e-3)


def test_random_start_and_labels_have_the_model_shapes():
    W, H, b = ufm.random_start(3, 4, 5, seed=1)
    assert (W.shape, H.shape, b.shape) == ((3, 4), (4, 15), (3,))
    assert ufm.class_labels(3, 5).tolist() == [0] * 5 + [1] * 5 + [2] * 5
