"""`solve`: every method reaches the exact f* of Theorem 3.1 on every backend."""

import numpy as np
import pytest

from nc_keras import ufm

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
