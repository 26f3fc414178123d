"""nc_keras.collapse.formulas, each metric on inputs whose value is known."""

import numpy as np
import pytest

from nc_keras.collapse import formulas


def simplex(K, d, scale=1.0, seed=0):
    """Rows: a K-simplex ETF of norm `scale`, rotated into R^d (eq. (5))."""
    M = np.sqrt(K / (K - 1)) * (np.eye(K) - np.ones((K, K)) / K)
    P = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, K)))[0]
    return scale * M @ P.T


def test_etf_metrics_vanish_on_a_simplex_and_not_elsewhere():
    W = simplex(5, 8, scale=3.0)
    Hbar = 0.2 * W.T
    assert formulas.nc2(W) < 1e-14
    assert formulas.nc3(W, Hbar) < 1e-14
    assert formulas.means_etf_error(Hbar) < 1e-14
    assert formulas.classifier_norm_cv(W) < 1e-14 and formulas.means_norm_cv(Hbar) < 1e-14
    skewed = W * np.arange(1, 6)[:, None]
    assert formulas.nc2(skewed) > 0.1 and formulas.classifier_norm_cv(skewed) > 0.1
    E = formulas.simplex_etf_gram(5)
    assert np.linalg.norm(E) == pytest.approx(1.0)
    np.testing.assert_allclose(E.sum(axis=1), 0, atol=1e-15)


def test_zero_gram_is_nan_with_a_warning():
    with pytest.warns(RuntimeWarning, match="W W\\^T is zero"):
        assert np.isnan(formulas.nc2(np.zeros((3, 4))))


def test_nc1_with_formed_sigma_w_equals_its_projections():
    rng = np.random.default_rng(1)
    K, d = 4, 6
    means, counts = rng.normal(size=(K, d)), np.array([3, 5, 7, 9])
    mu_G = formulas.global_mean(counts, means)
    np.testing.assert_allclose(mu_G, (counts[:, None] * means).sum(0) / counts.sum())
    Hbar = formulas.centred_means(means, mu_G)
    A = rng.normal(size=(d, d))
    sigma_w = A @ A.T
    # (1/K) tr(Sigma_W Sigma_B^+) on the rank-(K-1) Sigma_B = Hbar Hbar^T / K.
    eigval, eigvec = np.linalg.eigh(Hbar @ Hbar.T / K)
    top = eigvec[:, -(K - 1):] / eigval[-(K - 1):] @ eigvec[:, -(K - 1):].T
    expected = np.trace(sigma_w @ top) / K
    assert formulas.nc1(sigma_w, Hbar) == pytest.approx(expected, rel=1e-10)
    assert formulas.nc1(formulas.projected_within(sigma_w), Hbar) == pytest.approx(
        expected, rel=1e-10)
    assert formulas.trace_ratio(np.trace(sigma_w), Hbar) == pytest.approx(
        np.trace(sigma_w) / np.trace(Hbar @ Hbar.T / K))


def test_nc4_and_nearest_class_mean():
    W, b = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.5, -1.0])
    assert formulas.nc4(W, b, np.array([1.0, 1.0])) == pytest.approx(np.hypot(1.5, 1.0))
    means = np.array([[0.0, 0.0], [np.nan, np.nan], [10.0, 0.0]])
    h = np.array([[1.0, 0.0], [9.0, 1.0], [6.0, 0.0]])
    np.testing.assert_array_equal(formulas.nearest_class_mean(h, means), [0, 2, 2])
    assert formulas.ncc_mismatches(np.array([0, 2, 0]), h, means) == 1


def test_angle_metrics_on_a_simplex_and_gnc2_minimum():
    K = 6
    Hbar = 0.3 * simplex(K, 9).T
    cosines = formulas.means_cosines(Hbar)
    np.testing.assert_allclose(cosines, (K / (K - 1)) * np.eye(K) - 1 / (K - 1), atol=1e-14)
    assert formulas.means_cos_std(Hbar) < 1e-14
    assert formulas.means_cos_max_gap(Hbar) < 1e-14
    # The log-kernel energy of a simplex ETF is its minimum -1/2 log(2K/(K-1)).
    assert formulas.gnc2_minimum(K) == pytest.approx(-0.5 * np.log(2 * K / (K - 1)))
    assert formulas.gnc2(Hbar) == pytest.approx(formulas.gnc2_minimum(K), abs=1e-14)
    rng = np.random.default_rng(3)
    for d in (2, 5, 9):  # random directions, also with K > d + 1, lie above it
        assert formulas.gnc2(rng.normal(size=(d, K))) > formulas.gnc2_minimum(K) + 1e-3
    # Self-duality, and uniform duality whatever the common angle.
    W = 2.0 * Hbar.T
    assert formulas.nc3_papyan(W, Hbar) < 1e-14 and formulas.unc3(W, Hbar) < 1e-14
    # w_k = 0.6 m_k + 0.8 u_k with u_k orthonormal and orthogonal to every
    # m_k: every cos(w_k, mu_k - mu_G) is 0.6, so UNC3 is 0, NC3 (Papyan) not.
    Hbar = simplex(K, 2 * K, seed=5).T
    basis = np.linalg.qr(np.concatenate([Hbar, rng.normal(size=(2 * K, K))], axis=1))[0]
    directions = Hbar.T / np.linalg.norm(Hbar, axis=0)[:, None]
    tilted = 0.6 * directions + 0.8 * basis[:, K - 1:2 * K - 1].T
    assert formulas.unc3(tilted, Hbar) < 1e-14
    assert formulas.nc3_papyan(tilted, Hbar) > 0.5


def test_cdnv_against_its_definition():
    rng = np.random.default_rng(2)
    K, d = 5, 7
    means = rng.normal(size=(K, d))
    variances = rng.uniform(0.1, 2.0, size=K)
    Hbar = (means - means.mean(0)).T  # the CDNV does not depend on the centre
    expected = np.mean([(variances[k] + variances[l]) / (2 * np.sum((means[k] - means[l]) ** 2))
                        for k in range(K) for l in range(k + 1, K)])
    assert formulas.cdnv(Hbar, variances) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("factor", [1e-160, 1e100, 1e160])
def test_scale_invariant_formulas_do_not_overflow(factor):
    rng = np.random.default_rng(4)
    W, Hbar = rng.normal(size=(4, 6)), rng.normal(size=(6, 4))
    for name, args in (("nc2", (W,)), ("nc3", (W, Hbar)), ("means_etf_error", (Hbar,)),
                       ("nc3_papyan", (W, Hbar)), ("unc3", (W, Hbar)),
                       ("classifier_norm_cv", (W,)), ("gnc2", (Hbar,)),
                       ("means_cos_std", (Hbar,))):
        function = getattr(formulas, name)
        scaled = [factor * a for a in args]
        assert function(*scaled) == pytest.approx(function(*args), rel=1e-12), name
