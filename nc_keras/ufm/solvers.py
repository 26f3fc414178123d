"""Minimizing eq. (3) from a random start: gradient descent, SGD, Adam, L-BFGS.

`solve` runs one method on one `Problem` and records the objective, the gap
f - f* to the exact minimum (`optimum`: Theorem 3.1 for cross-entropy,
`nc_keras.ufm.optima` for the other losses), NC1-NC4 and the wall time along
the way. Where no exact minimum is known (imbalanced classes; focal loss with
large penalties) the gap is NaN and a run is judged by its gradient norm.
All arithmetic is float64 on the active backend. This module picks the
method and its defaults and judges how a run ended; the step loops are
`nc_keras.ufm.descent` (the L-BFGS loop itself is
`nc_keras.backend.lbfgs_minimize`) and the records `nc_keras.ufm.trajectory`
(`NC_KEYS` and `BLOW_UP` are defined there and exported here too).

Every loop stops on a non-finite objective or gradient (a NaN start or
learning rate, an overflow), and `converged` is judged at the final point,
never inferred from which stopping rule fired.
"""

import dataclasses
import math
import warnings

import numpy as np

from nc_keras import backend, validation
from nc_keras.deprecation import renamed_arguments
from nc_keras.ufm import losses
from nc_keras.ufm.descent import largest_entry, run_gd, run_lbfgs, run_minibatch
from nc_keras.ufm.problem import cached_problem
from nc_keras.ufm.theory import (
    DEFAULT_LAMBDA,
    Optimum,
    OptimumUnknownError,
    class_counts,
    optimum,
    random_start,
)
from nc_keras.ufm.trajectory import BLOW_UP, NC_KEYS, Recorder

__all__ = [
    "METHODS",
    "NC_KEYS",
    "STATUSES",
    "CONVERGED_RELATIVE_GAP",
    "BLOW_UP",
    "SolveResult",
    "solve",
]

METHODS = ("gd", "sgd", "adam", "lbfgs")
# SolveResult.status: how a run ended.
STATUSES = ("converged", "gap_reached", "max_steps", "stalled", "diverged")
# Without a `gap_tolerance`, a stationary point counts as converged only this
# close to f* (relative): a gradient test alone also passes at saddles, and
# the line search's round-off stop fires at any point where f is huge.
CONVERGED_RELATIVE_GAP = 1e-6


@dataclasses.dataclass
class SolveResult:
    """What `solve` returns.

    trajectory: list of dicts, one per record, with keys "step", "phase"
    ("main" or "polish"), "objective", "gap" (f - f*), "relative_gap"
    ((f - f*) / |f*|), "nc1".."nc4", "seconds" (optimization wall time so
    far, recording excluded). final: the last record. steps: iterations of
    the main phase; polish_steps: full-batch gradient-descent iterations
    that finished an "sgd"/"adam" run (0 otherwise); gap_before_polish:
    f - f* when the main phase ended. W, H, b: the final point (NumPy).

    optimum: the exact minimum (`optimum`), or None where none is known
    (imbalanced classes, d < K - 1, ...; every gap is then NaN). converged:
    the final point is finite, stationary (largest gradient entry <=
    `gradient_tolerance`, or f can no longer resolve a descent step) and,
    when f* applies, within the gap tolerance of it (`gap_tolerance`, else
    `CONVERGED_RELATIVE_GAP`).
    diverged: f or its gradient became NaN or infinite, or f grew beyond
    `BLOW_UP` times its start; the run stopped there. status: one of
    `STATUSES`: "converged"; "gap_reached" (stopped at the `gap_tolerance`
    target before the gradient test passed); "max_steps" (the step budget
    ran out); "stalled" (stopped short of f*: no descent left, or a
    stationary point that is not f*); "diverged". message: the same in
    words, with the final f, gradient and gap.
    gradient_norm: the largest gradient entry at the final point.
    """

    method: str
    seed: int
    optimum: Optimum | None
    trajectory: list
    steps: int
    polish_steps: int
    gap_before_polish: float
    seconds: float
    converged: bool
    diverged: bool
    status: str
    message: str
    W: np.ndarray
    H: np.ndarray
    b: np.ndarray
    labels: np.ndarray
    gradient_norm: float = float("nan")

    @property
    def final(self):
        return self.trajectory[-1]


@renamed_arguments(lr="learning_rate")
def solve(
    num_classes,
    feature_dim,
    n_per_class,
    lambda_w=DEFAULT_LAMBDA,
    lambda_h=DEFAULT_LAMBDA,
    lambda_b=DEFAULT_LAMBDA,
    method="lbfgs",
    seed=0,
    steps=None,
    learning_rate=None,
    batch_size=None,
    gradient_tolerance=1e-9,
    gap_tolerance=None,
    polish=True,
    polish_steps=20000,
    record_every=None,
    record_metrics=True,
    init_scale=1.0,
    progress=None,
    loss="ce",
    smoothing=None,
    gamma=None,
):
    """Minimizes eq. (3) from a random start (`random_start(seed, init_scale)`).

    Methods (all float64, gradients by autodiff on the active backend):

    * "gd": full-batch gradient descent with an Armijo backtracking step
      (each step first tries twice the previous step size, then halves it
      until f drops by at least half the first-order prediction). The
      problem's curvature differs by orders of magnitude between W, H and b
      and along the path, so any fixed step is either unsafe or slow; the
      backtracking finds the local smoothness scale. `steps`: at most 20000.
    * "sgd": minibatch SGD with momentum 0.9 (PyTorch convention), lr 0.5,
      the learning rate divided by 10 at 50% and 75% of `steps` (default
      1000 minibatch steps, batches of N/10 samples, reshuffled every epoch).
    * "adam": minibatch Adam (lr 0.1, betas 0.9/0.999, eps 1e-12), same
      schedule and batches as "sgd" (lr 0.01 still leaves a 10% gap after
      1000 steps; 0.1 reaches about 1e-4 like SGD).
    * "lbfgs": full-batch L-BFGS, history 10 (`nc_keras.backend.lbfgs_minimize`:
      tfp's, with its Hager-Zhang line search, on TensorFlow and JAX;
      torch.optim.LBFGS with the strong Wolfe line search on torch).
      `steps`: at most 2000 iterations.

    Minibatch noise keeps SGD and Adam at a relative gap around 1e-4 (their
    stochastic gradients do not vanish at the optimum: every sample's
    cross-entropy gradient is nonzero there), so with `polish=True` they end
    with a full-batch phase: the "gd" iteration above, as the batch size grows to
    N. That phase is reported separately (`polish_steps`,
    `gap_before_polish`, trajectory rows with phase "polish").

    Every full-batch method stops when the largest gradient entry is at most
    `gradient_tolerance` (a test that needs no knowledge of f*; "gd" also
    stops when the decrease its line search asks for is below float64
    round-off of f), or, if
    `gap_tolerance` is set, as soon as a record has (f - f*)/|f*| <= it.
    Every method, and the polish, stops as soon as f or its gradient is NaN
    or infinite (e.g. `init_scale=nan`, `learning_rate=nan`, a learning rate so large
    that the iterates overflow) or f exceeds `BLOW_UP` times its starting
    value: the result then has `diverged` True and no polish is run.
    `SolveResult` says how the run ended (`converged`, `status`, `message`).

    Args:
        num_classes, feature_dim, n_per_class: K, d, n; `n_per_class` may be
            K counts (imbalanced classes). Whole numbers (4.0 is taken as 4),
            K >= 2, d >= 1, n >= 1. Where no exact minimum is known
            (imbalanced classes; d < K - 1, with a UserWarning; focal loss
            with large penalties) the gaps are NaN, `optimum` is None and
            `converged` rests on the gradient test alone.
        lambda_w, lambda_h, lambda_b: weight decay of eq. (3); finite, with
            lambda_w, lambda_h > 0 and lambda_b >= 0.
        method: one of `METHODS`. seed: the random start.
        steps, learning_rate, batch_size: override the defaults above (None:
            default; steps and batch_size must be whole numbers >= 1,
            batch_size <= N; learning_rate only for "sgd" and "adam": "gd"
            and "lbfgs" find their steps by a line search). `lr`: the former
            name of `learning_rate`, deprecated.
        gradient_tolerance: >= 0; gap_tolerance: None or >= 0.
        polish: end "sgd"/"adam" with the full-batch phase; polish_steps: its
            iteration budget (>= 0).
        record_every: record every this many steps, >= 1 (default: every step
            for "gd" and "lbfgs", every epoch for "sgd" and "adam").
        record_metrics: compute NC1-NC4 at each record.
        progress: optional callable(method, record_dict) called at each record.
        loss, smoothing, gamma: the loss of eq. (3) (`nc_keras.ufm.losses.get`).
    Returns:
        `SolveResult`.
    Raises:
        ValueError, naming the argument, for any argument outside the ranges
        above (a NaN lambda, K = 2.7, steps = 0, ...).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if learning_rate is not None and method in ("gd", "lbfgs"):
        raise ValueError(f"learning_rate applies to methods sgd and adam; {method} finds its "
                         f"steps by a line search (got learning_rate={learning_rate!r}): leave "
                         "it out")
    K = validation.class_count(num_classes)
    d = validation.count(feature_dim, "feature_dim")
    N = int(class_counts(K, n_per_class).sum())  # n or K counts: checked here
    # None means "the method's default"; 0 used to mean that too, silently.
    steps = validation.optional_count(steps, "steps")
    batch_size = validation.optional_count(batch_size, "batch_size")
    if batch_size is not None and batch_size > N:
        raise ValueError(f"batch_size must be at most N = {N}; got {batch_size}")
    record_every = validation.optional_count(record_every, "record_every")
    polish_budget = validation.count(polish_steps, "polish_steps", minimum=0)
    gradient_tolerance = validation.nonnegative(gradient_tolerance, "gradient_tolerance")
    if gap_tolerance is not None:
        gap_tolerance = validation.nonnegative(gap_tolerance, "gap_tolerance")
    lambdas = (lambda_w, lambda_h, lambda_b)
    loss = losses.get(loss, smoothing, gamma)
    try:
        best = optimum(K, n_per_class, *lambdas, loss, feature_dim=d)  # also checks the lambdas
    except OptimumUnknownError:
        # No exact f* (imbalanced classes, a rank d cannot hold, focal loss
        # with large penalties): the gradient test alone judges the run.
        best = None
        if d < K - 1:
            warnings.warn(
                f"d = {d} < K - 1 = {K - 1}: Theorem 3.1's f* does not apply (a simplex ETF "
                "of K vectors needs K - 1 dimensions, and the minimum is higher); the gaps "
                "are NaN and convergence is judged on the gradient only",
                UserWarning,
                stacklevel=2,
            )
    with backend.float64():
        problem = cached_problem(K, d, n_per_class, lambdas, loss)
        x = problem.flatten(*random_start(K, d, n_per_class, seed, init_scale))
        recorder = Recorder(problem, best, method, progress, record_metrics, gap_tolerance)
        recorder.start()
        main_steps, polish_steps, gap_before_polish = 0, 0, float("nan")
        if method == "lbfgs":
            # Each record ends one compiled L-BFGS chunk (its state carries
            # over, so the iterates are the same for any record_every).
            x, main_steps, stop = run_lbfgs(
                problem, x, steps or 2000, gradient_tolerance, record_every or 1, recorder
            )
        elif method == "gd":
            x, main_steps, stop = run_gd(
                problem, x, steps or 20000, gradient_tolerance, record_every or 1, recorder
            )
        else:
            x, main_steps, stop = run_minibatch(
                problem, x, method, steps, learning_rate, batch_size, record_every, seed, recorder
            )
            gap_before_polish = recorder.trajectory[-1]["gap"]
            # Only a run that used up its steps is polished: one at its gap
            # target needs nothing more, and from a non-finite point there is
            # no descent to follow.
            if polish and stop == "budget":
                x, end, stop = run_gd(
                    problem,
                    x,
                    polish_budget,
                    gradient_tolerance,
                    record_every or 1,
                    recorder,
                    first_step=main_steps,
                    phase="polish",
                )
                polish_steps = end - main_steps
        recorder.pause()
        status, message = _verdict(problem, x, best, stop, gradient_tolerance, gap_tolerance)
        W, H, b = problem.unflatten_numpy(x)
        gradient_norm = largest_entry(problem.value_and_grad(x)[1])
    return SolveResult(
        method=method,
        seed=seed,
        optimum=best,
        trajectory=recorder.trajectory,
        steps=main_steps,
        polish_steps=polish_steps,
        gap_before_polish=gap_before_polish,
        seconds=recorder.elapsed,
        converged=status == "converged",
        diverged=status == "diverged",
        status=status,
        message=message,
        W=W,
        H=H,
        b=b,
        labels=problem.labels,
        gradient_norm=gradient_norm,
    )


def _verdict(problem, x, best, stop, gradient_tolerance, gap_tolerance):
    """(status, message) for the final point x of a run that ended by `stop`.

    Judged at x itself, not from `stop` alone: a step budget can end at the
    optimum, and the round-off stop also fires where f is astronomically
    large (a run that blew up without overflowing).
    """
    value, grad = problem.value_and_grad(x)
    value, largest = float(backend.to_numpy(value)), largest_entry(grad)
    if stop == "diverged" or not (math.isfinite(value) and math.isfinite(largest)):
        return "diverged", (
            f"diverged: f = {value:.3g}, largest gradient entry {largest:.3g} "
            f"(NaN, infinite or over {BLOW_UP:.0e} times the starting f: check "
            "init_scale and learning_rate)"
        )
    stationary = largest <= gradient_tolerance or stop == "round_off"
    where = f"f = {value:.12g}, largest gradient entry {largest:.2e}"
    if best is None:
        near, where = True, where + " (no exact f* known)"
    else:
        relative_gap = (value - best.value) / abs(best.value)
        target = CONVERGED_RELATIVE_GAP if gap_tolerance is None else gap_tolerance
        near = abs(relative_gap) <= target
        where += f", (f - f*)/|f*| = {relative_gap:.2e} (tolerance {target:.0e})"
    if stationary and near:
        return "converged", "converged: " + where
    if stop == "gap":
        return "gap_reached", "reached the gap target before the gradient test: " + where
    if stop == "budget":
        return "max_steps", "ran out of steps: " + where
    return "stalled", "stopped without reaching f*: " + where
