"""The imbalanced UFM: the class-mean reduction and minority collapse."""

import math

import numpy as np
import pytest

from nc_keras import ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)


def test_class_mean_problem_has_the_minimum_of_the_full_problem():
    K, d, counts = 4, 4, [6, 6, 2, 2]
    reduced = ufm.solve_class_means(counts, d, LAMBDAS)
    assert reduced["gradient"] <= 1e-13
    full = ufm.solve(K, d, counts, *LAMBDAS, record_metrics=False, record_every=50)
    value = full.final["objective"]
    assert value >= reduced["value"] - 1e-13 * reduced["value"]
    assert (value - reduced["value"]) / reduced["value"] <= 1e-8
    # Balanced counts: the class-mean problem has Theorem 3.1's minimum.
    balanced = ufm.solve_class_means([3, 3, 3, 3], d, LAMBDAS)
    assert balanced["value"] == pytest.approx(ufm.optimum(K, 3, *LAMBDAS).value, rel=1e-12)


def test_minority_rows_collapse_only_with_a_learned_classifier(tmp_path):
    result = ufm.minority_collapse(
        [1.0, 1000.0], num_major=2, num_minor=2, n_major=20, lambda_w=5e-3, lambda_h=5e-3,
        lambda_b=5e-3, feature_dim=4,
    )
    balanced, imbalanced = result.rows
    assert balanced["minority_w_cos"] == pytest.approx(-1 / 3, abs=1e-8)
    assert balanced["norm_ratio"] == pytest.approx(1.0, abs=1e-8)
    assert balanced["fixed_h_cos"] == pytest.approx(-1 / 3, abs=1e-8)
    # At R = 1000 the minority rows have merged or vanished; with the fixed
    # ETF the minority logits stay apart.
    assert imbalanced["norm_ratio"] < 1e-8 or imbalanced["minority_w_cos"] >= 1 - 1e-6
    assert result.collapse_ratio == 1000.0
    assert imbalanced["fixed_logit_cos"] < 0
    assert max(row["gradient"] for row in result.rows) <= 1e-12
    assert "cos minority w" in result.table()
    assert ufm.plot_minority_collapse(result, tmp_path / "m.png").stat().st_size > 1000
    assert math.isnan(ufm.minority._mean_pairwise_cosine(np.zeros((2, 3)), np.eye(3)))
