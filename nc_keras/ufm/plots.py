"""Figures of UFM runs: one `solve` trajectory, or a whole `landscape`."""

import numpy as np

from nc_keras.ufm.solvers import NC_KEYS

__all__ = ["plot_trajectory", "plot_landscape"]

_METHOD_COLORS = {"gd": "tab:blue", "sgd": "tab:orange", "adam": "tab:green", "lbfgs": "tab:red"}


def _pyplot():
    import matplotlib

    # Files only, never a window: also right on machines without a display.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(trajectory, key):
    steps = np.array([row["step"] for row in trajectory], dtype=float)
    values = np.array([abs(row.get(key, np.nan)) for row in trajectory], dtype=float)
    # Log axes cannot show exact zeros (f = f* to the last bit): floor them.
    return steps, np.maximum(values, 1e-17)


def plot_trajectory(result, path, title=None):
    """Figure of one `solve` run: |f - f*|/|f*| and NC1-NC4 per iteration (log).

    Writes `path` (any format matplotlib knows, PNG by default) and returns it.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for key, label in [("relative_gap", "(f - f*) / |f*|"), *[(k, k.upper()) for k in NC_KEYS]]:
        axis.plot(*_series(result.trajectory, key), label=label)
    if result.polish_steps:
        axis.axvline(result.steps, color="grey", linestyle=":", label="full-batch polish")
    axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_title(title or f"UFM, {result.method}, seed {result.seed}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_landscape(result, path):
    """One figure for a `LandscapeResult`: relative gap, NC1, NC2, NC3 per
    iteration for every run, coloured by method (log scale). Returns `path`."""
    plt = _pyplot()
    keys = [("relative_gap", "(f - f*) / |f*|"), ("nc1", "NC1"), ("nc2", "NC2"), ("nc3", "NC3")]
    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.8))
    for axis, (key, label) in zip(axes, keys):
        seen = set()
        for run in result.runs:
            axis.plot(
                *_series(run.trajectory, key),
                color=_METHOD_COLORS.get(run.method),
                alpha=0.7,
                linewidth=1,
                label=None if run.method in seen else run.method,
            )
            seen.add(run.method)
        axis.set_yscale("log")
        axis.set_xscale("symlog", linthresh=10)
        axis.set_xlim(left=0)
        axis.set_xlabel("iteration")
        axis.set_title(label)
    axes[0].legend()
    figure.suptitle(
        f"UFM landscape: K={result.num_classes}, d={result.feature_dim}, "
        f"n={result.n_per_class}, {len(result.runs)} runs, f* = {result.optimum.value:.6f}"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
