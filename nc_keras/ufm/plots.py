"""Figures of UFM runs: one `solve` trajectory, a whole `landscape`, or a
`minority_collapse` sweep."""

import numpy as np

from nc_keras.figures import new_figure, save_figure
from nc_keras.ufm.trajectory import NC_KEYS

__all__ = ["plot_trajectory", "plot_landscape", "plot_minority_collapse"]

_METHOD_COLORS = {"gd": "tab:blue", "sgd": "tab:orange", "adam": "tab:green", "lbfgs": "tab:red"}


def _series(trajectory, key):
    steps = np.array([row["step"] for row in trajectory], dtype=float)
    values = np.array([abs(row.get(key, np.nan)) for row in trajectory], dtype=float)
    # Log axes cannot show exact zeros (f = f* to the last bit): floor them.
    return steps, np.maximum(values, 1e-17)


def plot_trajectory(result, path, title=None):
    """Figure of one `solve` run: |f - f*|/|f*| and NC1-NC4 per iteration (log).

    Writes `path` (any format matplotlib knows, PNG by default) and returns it.
    """
    figure = new_figure(figsize=(7, 4.5))
    axis = figure.subplots()
    for key, label in [("relative_gap", "(f - f*) / |f*|"), *[(k, k.upper()) for k in NC_KEYS]]:
        axis.plot(*_series(result.trajectory, key), label=label)
    if result.polish_steps:
        axis.axvline(result.steps, color="grey", linestyle=":", label="full-batch polish")
    axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_title(title or f"UFM, {result.method}, seed {result.seed}")
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
    return path


def plot_landscape(result, path):
    """One figure for a `LandscapeResult`: relative gap, NC1, NC2, NC3 per
    iteration for every run, coloured by method (log scale). Returns `path`."""
    keys = [("relative_gap", "(f - f*) / |f*|"), ("nc1", "NC1"), ("nc2", "NC2"), ("nc3", "NC3")]
    figure = new_figure(figsize=(4 * len(keys), 3.8))
    axes = figure.subplots(1, len(keys))
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
    save_figure(figure, path)
    return path


def plot_minority_collapse(result, path, title=None):
    """Figure of a `MinorityResult` (like Fang et al., PNAS 2021, Figs. 1-2).

    Three panels against the imbalance ratio R (log): the mean pairwise
    cosine of the classifier rows (learned W: minority and majority classes;
    the fixed simplex ETF's -1/(K-1)), the minority / majority row-norm ratio
    (log), and the cosine of the minority class-mean features (learned vs
    fixed W) and of the fixed-ETF minority logits. Where the minority rows
    are exactly 0 their cosine is undefined: that range is shaded; a dotted
    line marks `collapse_ratio`. Writes `path` and returns it.
    """
    rows = result.rows
    ratios = np.array([row["ratio"] for row in rows])

    def column(key):
        return np.array([row[key] for row in rows], dtype=float)

    K = result.num_major + result.num_minor
    panels = [
        ("classifier rows: mean pairwise cosine", [
            (column("minority_w_cos"), "o-", "learned W, minority classes"),
            (column("majority_w_cos"), "s--", "learned W, majority classes"),
            (np.full(len(rows), -1.0 / (K - 1)), "k:", "fixed simplex ETF W"),
        ]),
        ("minority row norm / majority row norm", [
            (np.maximum(column("norm_ratio"), 1e-17), "o-", "learned W"),
        ]),
        ("minority classes: mean pairwise cosine", [
            (column("minority_h_cos"), "o-", "learned W: class-mean features"),
            (column("fixed_h_cos"), "^-", "fixed ETF W: class-mean features"),
            (column("fixed_logit_cos"), "v:", "fixed ETF W: centred logits"),
        ]),
    ]
    figure = new_figure(figsize=(16, 4.6))
    axes = figure.subplots(1, 3)
    for axis, (name, series) in zip(axes, panels):
        for values, style, label in series:
            axis.plot(ratios, values, style, label=label, markersize=4)
        if result.vanish_ratio is not None:
            axis.axvspan(result.vanish_ratio, ratios.max(), color="grey", alpha=0.15,
                         label="minority rows = 0")
        if result.collapse_ratio is not None:
            axis.axvline(result.collapse_ratio, color="tab:red", linestyle=":", linewidth=1,
                         label=f"collapse, R = {result.collapse_ratio:.4g}")
        axis.set_xscale("log")
        axis.set_xlabel("imbalance ratio R = n_major / n_minor")
        axis.set_title(name)
        axis.legend(fontsize=8)
    axes[1].set_yscale("log")
    lw, lh, lb = result.lambdas
    figure.suptitle(title or (
        f"Minority collapse in the CE UFM, eq. (3): {result.num_major} majority + "
        f"{result.num_minor} minority classes, d = {result.feature_dim}, "
        f"n_major = {result.n_major:g}, n_minor = n_major / R, lambdas {lw:g}/{lh:g}/{lb:g}"
    ))
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    return path
