"""Theorem 3.2 on the Hessian of eq. (3): a strict saddle at the origin, only
the rotation zero modes at a global minimizer."""

import math

import numpy as np
import pytest

from nc_keras import ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)


def test_hessian_at_origin_is_a_strict_saddle(f_value):
    K, d, n = 4, 5, 10
    labels = ufm.class_labels(K, n)
    zeros = (np.zeros((K, d)), np.zeros((d, K * n)), np.zeros(K))
    eigen = ufm.hessian_min_eigenvalue(*zeros, labels, *LAMBDAS, dense_up_to=0)
    # [[lW I, G], [G^T, lH I]] block with |G| = 1/(K sqrt(n)).
    expected = -(1 / (K * math.sqrt(n)) - math.sqrt(LAMBDAS[0] * LAMBDAS[1]))
    assert eigen.eigenvalues[0] == pytest.approx(expected, rel=1e-6)
    f0 = f_value(*zeros, labels)
    for t in (1e-3, 1e-2, 1e-1):
        moved = [t * part for part in eigen.split(0)]
        assert f_value(*moved, labels) < f0


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
