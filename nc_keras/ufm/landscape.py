"""The landscape claim of Theorems 3.1 and 3.2, checked numerically: many
random starts times every solver, each ending at the exact f*."""

import dataclasses

from nc_keras import backend
from nc_keras.ufm.solvers import METHODS, solve
from nc_keras.ufm.theory import DEFAULT_LAMBDA, Optimum, optimum
from nc_keras.ufm.trajectory import NC_KEYS

__all__ = ["LandscapeResult", "landscape"]


@dataclasses.dataclass
class LandscapeResult:
    """`landscape`'s outcome: one row per (method, start) and the runs."""

    num_classes: int
    feature_dim: int
    n_per_class: int
    lambdas: tuple
    optimum: Optimum
    rows: list
    runs: list

    COLUMNS = (
        "method",
        "start",
        ("relative_gap", "(f-f*)/f*"),
        "nc1",
        "nc2",
        "nc3",
        "nc4",
        "steps",
        "polish_steps",
        "seconds",
    )

    def table(self):
        from nc_keras.reporting import format_table

        formats = {key: ".1e" for key in ("relative_gap", *NC_KEYS)}
        formats["seconds"] = ".2f"
        return format_table(self.rows, self.COLUMNS, formats)

    def all_reached(self, relative_gap=1e-8, nc_tolerance=1e-4):
        """Whether every run reached f* (relative gap) and NC2, NC3 <= tol."""
        return all(
            abs(row["relative_gap"]) <= relative_gap
            and row["nc2"] <= nc_tolerance
            and row["nc3"] <= nc_tolerance
            for row in self.rows
        )


def landscape(
    num_classes=10,
    feature_dim=20,
    n_per_class=30,
    lambda_w=DEFAULT_LAMBDA,
    lambda_h=DEFAULT_LAMBDA,
    lambda_b=DEFAULT_LAMBDA,
    methods=METHODS,
    starts=3,
    seed=0,
    progress=True,
    loss="ce",
    smoothing=None,
    gamma=None,
    **solve_options,
):
    """The landscape claim of Theorems 3.1 and 3.2, checked numerically.

    Runs `solve` for every method in `methods` from `starts` random starts
    (seeds seed, seed+1, ...; every method gets the same starts) and
    tabulates each run's final relative gap to the exact f* of `optimum`,
    NC1-NC4 and cost. A strict saddle landscape without spurious minima means
    every run ends at f*. `progress`: print one line per finished run.
    `solve_options` go to `solve` (e.g. gradient_tolerance, steps).
    `loss`, `smoothing`, `gamma`: the loss of eq. (3) (`nc_keras.ufm.losses`);
    its exact minimum must be known (`optimum`).
    Every run shares one compiled `Problem` (`cached_problem`).
    Returns `LandscapeResult` (`.table()`, `.all_reached()`; `plot_landscape`).
    """
    lambdas = (lambda_w, lambda_h, lambda_b)
    best = optimum(
        num_classes, n_per_class, *lambdas, loss, smoothing, gamma, feature_dim=feature_dim
    )
    rows, runs = [], []
    with backend.float64():
        for method in methods:
            for start in range(starts):
                run = solve(
                    num_classes,
                    feature_dim,
                    n_per_class,
                    *lambdas,
                    method=method,
                    seed=seed + start,
                    loss=loss,
                    smoothing=smoothing,
                    gamma=gamma,
                    **solve_options,
                )
                final = run.final
                row = {
                    "method": method,
                    "start": seed + start,
                    "gap": final["gap"],
                    "relative_gap": final["relative_gap"],
                    **{key: final.get(key, float("nan")) for key in NC_KEYS},
                    "steps": run.steps,
                    "polish_steps": run.polish_steps,
                    "seconds": run.seconds,
                    "converged": run.converged,
                }
                rows.append(row)
                runs.append(run)
                if progress:
                    print(
                        f"  {method:>5} start {seed + start}: (f-f*)/f* = "
                        f"{row['relative_gap']:.1e}, NC2 {row['nc2']:.1e}, steps "
                        f"{run.steps}+{run.polish_steps} polish, {run.seconds:.2f} s",
                        flush=True,
                    )
    return LandscapeResult(
        int(num_classes), int(feature_dim), int(n_per_class), lambdas, best, rows, runs
    )
