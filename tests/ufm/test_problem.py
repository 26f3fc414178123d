"""`Problem`: eq. (3) compiled over the flat vector [vec W, vec H, b]."""

import numpy as np

from nc_keras import backend, ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)


def test_flat_value_and_layout_match_the_objective(f_value):
    W, H, b = ufm.random_start(3, 4, 5, seed=1)
    labels = ufm.class_labels(3, 5)
    with backend.float64():
        problem = ufm.Problem(3, 4, 5, LAMBDAS)
        x = problem.flatten(W, H, b)
        value = float(backend.to_numpy(problem.value(x)))
        back = problem.unflatten_numpy(x)
    assert abs(value - f_value(W, H, b, labels)) <= 1e-14 * abs(value)
    assert all(np.array_equal(a, c) for a, c in zip(back, (W, H, b)))
    assert np.array_equal(problem.labels, labels)


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(0)
    W, H, b = ufm.random_start(3, 4, 5, seed=1)
    with backend.float64():
        problem = ufm.Problem(3, 4, 5, LAMBDAS)
        x = problem.flatten(W, H, b)
        v = backend.to_tensor(rng.standard_normal(x.shape[0]))
        product = backend.to_numpy(problem.hvp()(x, v))
        _, g_plus = problem.value_and_grad(x + 1e-5 * v)
        _, g_minus = problem.value_and_grad(x - 1e-5 * v)
    difference = (backend.to_numpy(g_plus) - backend.to_numpy(g_minus)) / 2e-5
    assert np.allclose(product, difference, atol=1e-7)
