"""The exact minima of eq. (3) for every loss (`nc_keras.ufm.optima`), checked
three ways on the active backend: a brute-force scan of the structured family,
`solve` from random starts, and the Hessian at the constructed minimizer."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from nc_keras import backend, ufm

K, D, N_PER = 4, 5, 3
LAM = 5e-3

# (loss, options, lambda_w = lambda_h, lambda_b): every regime of every loss.
CASES = [
    ("ce", {}, LAM, 0.0),
    ("label_smoothing", {"smoothing": 0.1}, LAM, LAM),
    ("label_smoothing", {"smoothing": 0.3}, 0.05, LAM),
    ("focal", {"gamma": 2.0}, LAM, LAM),
    ("focal", {"gamma": 0.5}, LAM, LAM),
    ("focal", {"gamma": 1.0}, 0.05, LAM),
    ("mse", {}, LAM, LAM),  # regime (ii): a rank K-1 simplex ETF
    ("mse", {}, LAM, 0.0),  # regime (ii), free bias: b* = 1/K
    ("mse", {}, LAM, 1.0),  # regime (iii): rank K
    ("mse", {}, 0.2, LAM),  # regime (i): the origin
]
IDS = [
    f"{loss}{''.join(f'-{v}' for v in opts.values())}-l{lam}-lb{lb}"
    for loss, opts, lam, lb in CASES
]


def _lambdas(lam, lb):
    return (lam, lam, lb)


def _problem_value(loss, opts, lam, lb):
    """eq. (3) at NumPy (W, H, b), compiled once per case."""
    with backend.float64():
        problem = ufm.Problem(K, D, N_PER, _lambdas(lam, lb), loss=ufm.losses.get(loss, **opts))

    def value(W, H, b):
        with backend.float64():
            return float(backend.to_numpy(problem.value(problem.flatten(W, H, b))))

    return value


@pytest.mark.parametrize("loss, opts, lam, lb", CASES, ids=IDS)
def test_optimum_is_the_minimum_of_a_brute_force_family_scan(loss, opts, lam, lb):
    best = ufm.optimum(K, N_PER, *_lambdas(lam, lb), loss=loss, feature_dim=D, **opts)
    value = _problem_value(loss, opts, lam, lb)
    W, H, b, _ = ufm.construct_optimum(K, D, N_PER, *_lambdas(lam, lb), loss=loss, **opts)
    assert value(W, H, b) == pytest.approx(best.value, rel=1e-13, abs=1e-15)

    def family(params):
        margin, mean, bias = np.abs(params[0]), np.abs(params[1]), params[2]
        point = ufm.etf_family_point(K, D, N_PER, lam, lam, margin, mean, bias)
        return value(*point[:3])

    # A grid, then a local refinement from its best point: over the margin
    # for the shift-invariant losses (t = b = 0), over (margin, t, b) for MSE.
    top = 2.5 * best.margin + 1.0
    if loss == "mse":
        grid = [
            (m, t, c)
            for m in np.linspace(0, top, 9)
            for t in np.linspace(0, 1.2, 9)
            for c in np.linspace(-0.1, 0.4, 11)
        ]
    else:
        grid = [(m, 0.0, 0.0) for m in np.linspace(0, top, 101)]
    start = min(grid, key=family)
    assert family(start) >= best.value - 1e-14
    if loss == "mse":
        refined = minimize(
            family, start, method="Nelder-Mead",
            options=dict(xatol=1e-10, fatol=1e-16, maxiter=4000, maxfev=8000),
        ).fun
    else:
        step = top / 100
        refined = minimize_scalar(
            lambda m: family((m, 0.0, 0.0)),
            bounds=(max(0.0, start[0] - step), start[0] + step),
            method="bounded",
            options=dict(xatol=1e-12),
        ).fun
    refined = min(refined, family(start))
    assert refined >= best.value - 1e-14 * abs(best.value)
    assert (refined - best.value) / abs(best.value) <= 1e-8


@pytest.mark.parametrize("loss, opts, lam, lb", CASES, ids=IDS)
def test_solve_from_random_starts_reaches_but_never_beats_the_optimum(loss, opts, lam, lb):
    for seed in (0, 1):
        result = ufm.solve(
            K, D, N_PER, *_lambdas(lam, lb), seed=seed, loss=loss, record_metrics=False,
            gradient_tolerance=1e-8, record_every=50, **opts,
        )
        gap = result.final["relative_gap"]
        assert -1e-12 <= gap <= 1e-8, (seed, gap)


@pytest.mark.parametrize("loss, opts, lam, lb", CASES, ids=IDS)
def test_hessian_at_the_optimum_is_psd_with_the_rotation_zero_modes(loss, opts, lam, lb):
    lambdas = _lambdas(lam, lb)
    best = ufm.optimum(K, N_PER, *lambdas, loss=loss, **opts)
    W, H, b, labels = ufm.construct_optimum(
        K, D, N_PER, *lambdas, rotation_seed=2, loss=loss, **opts
    )
    zero_modes = ufm.rotation_zero_modes(K, D, lb, rank=best.rank, loss=loss)
    eigen = ufm.hessian_min_eigenvalue(
        W, H, b, labels, *lambdas, k=zero_modes + 1, loss=loss, **opts
    )
    values = eigen.eigenvalues
    assert values[0] >= -1e-10
    if best.at_origin:
        return  # W = H = 0: no rotation orbit to count
    assert np.all(np.abs(values[:zero_modes]) <= 1e-10), values
    assert values[zero_modes] > 1e-4  # every other direction is curved up


def test_label_smoothing_and_focal_reduce_to_theorem_3_1():
    for n, lam in [(3, 5e-3), (30, 5e-4), (10, 0.03), (10, 0.5)]:
        ce = ufm.optimum(K, n, lam, lam, lam)
        for loss, options in [("label_smoothing", {"smoothing": 0.0}), ("focal", {"gamma": 0.0})]:
            other = ufm.optimum(K, n, lam, lam, lam, loss=loss, **options)
            assert other.value == pytest.approx(ce.value, rel=1e-14)
            assert other.w_norm == pytest.approx(ce.w_norm, rel=1e-12, abs=1e-300)
            assert other.margin == pytest.approx(ce.margin, rel=1e-12)
    # Smoothing keeps the margin finite as the lambdas vanish.
    assert ufm.optimum(K, 10, 1e-12, 1e-12, 0.0, loss="label_smoothing").margin < 4


def test_mse_regimes_and_their_boundaries():
    n = 3
    at_one = 1.0 / (K * math.sqrt(n))  # nu = K sqrt(n lW lH) = 1 exactly
    assert ufm.optimum(K, n, at_one * 1.001, at_one, 0.1, loss="mse").at_origin
    inner = ufm.optimum(K, n, at_one * 0.999, at_one, 0.1, loss="mse")
    assert inner.rank == K - 1 and inner.classifier_cosine == pytest.approx(-1 / (K - 1))
    rank_k = ufm.optimum(K, n, LAM, LAM, 1.0, loss="mse")
    assert rank_k.rank == K and -1 / (K - 1) < rank_k.classifier_cosine < 0
    origin = ufm.optimum(K, n, 0.2, 0.2, 0.5, loss="mse")
    b = origin.bias
    assert b == pytest.approx(1 / (K * 1.5))
    # At the origin f* is the MSE of the best constant logits b 1.
    assert origin.value == pytest.approx(0.5 * ((1 - b) ** 2 + (K - 1) * b**2) + 0.25 * K * b**2)
    assert ufm.optimum(K, n, LAM, LAM, 0.0, loss="mse").bias == pytest.approx(1 / K)
    # lb -> infinity: an orthogonal frame.
    assert abs(ufm.optimum(K, n, LAM, LAM, 1e8, loss="mse").classifier_cosine) < 1e-6


def test_unknown_minima_raise_instead_of_guessing():
    with pytest.raises(ufm.OptimumUnknownError, match="imbalanced"):
        ufm.optimum(K, [3, 3, 3, 2], LAM, LAM, LAM)
    with pytest.raises(ufm.OptimumUnknownError, match="focal"):  # origin: log 4 > u_t(2)
        ufm.optimum(K, N_PER, 0.3, 0.3, LAM, loss="focal", gamma=2.0)
    with pytest.raises(ufm.OptimumUnknownError, match="rank 4"):
        ufm.optimum(K, N_PER, LAM, LAM, 1.0, loss="mse", feature_dim=K - 1)
    with pytest.raises(ufm.OptimumUnknownError, match="K - 1"):
        ufm.optimum(K, N_PER, LAM, LAM, LAM, feature_dim=K - 2)


def test_solve_with_imbalanced_classes_is_judged_by_its_gradient():
    counts = [4, 4, 2, 1]
    result = ufm.solve(K, D, counts, seed=0, record_metrics=False, gradient_tolerance=1e-9)
    assert result.optimum is None and math.isnan(result.final["gap"])
    assert result.gradient_norm <= 1e-9 and result.converged
    assert "no exact f*" in result.message
    assert result.H.shape == (D, sum(counts))
    assert ufm.class_labels(K, counts).tolist() == [0] * 4 + [1] * 4 + [2] * 2 + [3]
    with pytest.raises(ValueError, match="n_per_class"):
        ufm.solve(K, D, [3, 3, 3])
