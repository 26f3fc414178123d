"""The UFM solver on bad input: no hang, no false convergence, errors that name the argument."""

import math

import numpy as np
import pytest

from nc_keras import ufm


NAN = float("nan")


TINY = (3, 4, 2)


LAMBDAS = (ufm.DEFAULT_LAMBDA,) * 3


def problem(N=300, d=9, K=4, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), N // K)
    H = 3.0 * rng.normal(size=(K, d))[y] + spread * rng.normal(size=(N, d))
    return H, y, rng.normal(size=(K, d)), rng.normal(size=K)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ufm.METHODS)
def test_ufm_nan_start_stops_and_says_diverged(method):
    # Used to halve the gd step forever (every Armijo test fails on NaN).
    result = ufm.solve(*TINY, method=method, init_scale=NAN, record_metrics=False)
    assert result.diverged and not result.converged
    assert result.status == "diverged" and "diverged" in result.message
    assert result.steps == 0 and result.polish_steps == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["sgd", "adam"])
def test_ufm_nan_learning_rate_stops_before_and_without_the_polish(method):
    result = ufm.solve(*TINY, method=method, learning_rate=NAN, steps=50, record_metrics=False)
    assert result.diverged and not result.converged and result.status == "diverged"
    # It stops at the first record (one epoch), and the polish never starts.
    assert result.steps < 50 and result.polish_steps == 0
    assert math.isnan(result.final["objective"])


@pytest.mark.timeout(120)
def test_ufm_blown_up_sgd_is_diverged_not_converged():
    # Used to polish from f ~ 1e136 until the line search's round-off stop,
    # then report converged=True.
    result = ufm.solve(*TINY, method="sgd", learning_rate=1e6, steps=20, record_metrics=False)
    assert result.diverged and not result.converged
    assert result.polish_steps == 0


@pytest.mark.timeout(120)
def test_ufm_converged_needs_both_the_gap_and_the_gradient():
    early = ufm.solve(*TINY, method="gd", gap_tolerance=1e-2, record_metrics=False)
    assert early.status == "gap_reached" and not early.converged and not early.diverged
    unpolished = ufm.solve(*TINY, method="sgd", steps=3, polish=False, record_metrics=False)
    assert unpolished.status == "max_steps" and not unpolished.converged
    full = ufm.solve(*TINY, method="gd", record_metrics=False)
    assert full.converged and full.status == "converged" and not full.diverged
    assert abs(full.final["relative_gap"]) <= ufm.CONVERGED_RELATIVE_GAP


@pytest.mark.parametrize("value", [NAN, float("inf"), -1.0])
@pytest.mark.parametrize("position, name", [(0, "lambda_w"), (1, "lambda_h"), (2, "lambda_b")])
def test_ufm_optimum_and_solve_refuse_bad_lambdas(value, position, name):
    lambdas = list(LAMBDAS)
    lambdas[position] = value
    with pytest.raises(ValueError, match=name):
        ufm.optimum(3, 2, *lambdas)
    with pytest.raises(ValueError, match=name):
        ufm.solve(*TINY, *lambdas, method="gd")


@pytest.mark.parametrize(
    "position, name", [(0, "num_classes"), (1, "feature_dim"), (2, "n_per_class")]
)
def test_ufm_counts_must_be_whole_numbers(position, name):
    sizes = list(TINY)
    sizes[position] = 2.7
    with pytest.raises(ValueError, match=name):
        ufm.solve(*sizes, method="gd")
    if name != "feature_dim":
        with pytest.raises(ValueError, match=name):
            ufm.optimum(sizes[0], sizes[2], *LAMBDAS)
    # Whole numbers written as floats are the same problem.
    assert ufm.optimum(3.0, 2.0, *LAMBDAS) == ufm.optimum(3, 2, *LAMBDAS)


@pytest.mark.timeout(120)
def test_ufm_d_below_k_minus_1_warns_and_reports_no_gap():
    with pytest.warns(UserWarning, match="Theorem 3.1"):
        result = ufm.solve(4, 2, 2, method="lbfgs", record_metrics=False)
    assert result.optimum is None
    rows = result.trajectory
    assert all(math.isnan(row["gap"]) and math.isnan(row["relative_gap"]) for row in rows)
    assert math.isnan(result.gap_before_polish)
    # Judged on the gradient alone: f is stationary there, above Theorem 3.1's f*.
    assert result.converged and result.final["objective"] > ufm.optimum(4, 2, *LAMBDAS).value


@pytest.mark.parametrize(
    "option", [{"steps": 0}, {"steps": -3}, {"batch_size": 0}, {"batch_size": -1}]
)
def test_ufm_zero_or_negative_steps_and_batch_size_are_errors(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=name):
        ufm.solve(*TINY, method="sgd", record_metrics=False, **option)


@pytest.mark.parametrize("bad", [3, -1])
def test_ufm_objective_refuses_labels_outside_the_classes(bad):
    K, d, n = TINY
    W, H, b = ufm.random_start(K, d, n)
    labels = ufm.class_labels(K, n)
    labels[-1] = bad
    with pytest.raises(ValueError, match="labels"):
        ufm.objective(W, H, b, labels, *LAMBDAS)
    # One label short of H's columns is refused too.
    with pytest.raises(ValueError, match="labels"):
        ufm.objective(W, H, b, ufm.class_labels(K, n)[:-1], *LAMBDAS)


@pytest.mark.parametrize("method", ["gd", "lbfgs"])
@pytest.mark.parametrize("learning_rate", [NAN, 0.1])
def test_small_learning_rate_of_a_line_search_method_is_refused(method, learning_rate):
    # Their steps come from a line search: a learning rate was silently ignored.
    with pytest.raises(ValueError, match=rf"learning_rate applies to methods sgd and adam; {method} "
                                         r"finds its steps by a line search"):
        ufm.solve(*TINY, method=method, learning_rate=learning_rate)


def test_small_objective_with_transposed_h_names_its_shape():
    K, d, N = 3, 4, 6
    rng = np.random.default_rng(0)
    W, H, b = rng.normal(size=(K, d)), rng.normal(size=(d, N)), np.zeros(K)
    labels = np.arange(N) % K
    expected = float(ufm.objective(W, H, b, labels, 1e-3, 1e-3, 1e-3))
    assert math.isfinite(expected)
    with pytest.raises(ValueError, match=r"H must have shape \(d, N\) = \(4, 6\), one column per sample; "
                                         r"got \(6, 4\) \(H transposed\?\)"):
        ufm.objective(W, H.T, b, labels, 1e-3, 1e-3, 1e-3)
    with pytest.raises(ValueError, match=r"H must have shape \(d, N\) = \(4, 6\), one column per sample; got \(5, 6\)$"):
        ufm.objective(W, rng.normal(size=(5, N)), b, labels, 1e-3, 1e-3, 1e-3)
