"""Minimizing eq. (3) from a random start: gradient descent, SGD, Adam, L-BFGS.

`solve` runs one method on one `Problem` and records the objective, the gap
f - f* to the exact minimum (`optimum`: Theorem 3.1 for cross-entropy,
`nc_keras.ufm.optima` for the other losses), NC1-NC4 and the wall time along
the way. Where no exact minimum is known (imbalanced classes; focal loss with
large penalties) the gap is NaN and a run is judged by its gradient norm.
All arithmetic is float64 on the active backend; the L-BFGS loop itself is
`nc_keras.backend.lbfgs_minimize`.

Every loop stops on a non-finite objective or gradient (a NaN start or
learning rate, an overflow), and `converged` is judged at the final point,
never inferred from which stopping rule fired.
"""

import dataclasses
import math
import sys
import time
import warnings

import keras
import numpy as np

from nc_keras import backend
from nc_keras.ufm import checks, losses
from nc_keras.ufm.problem import cached_problem
from nc_keras.ufm.theory import (
    DEFAULT_LAMBDA,
    Optimum,
    OptimumUnknownError,
    class_counts,
    optimum,
    random_start,
)

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
NC_KEYS = ("nc1", "nc2", "nc3", "nc4")
# SolveResult.status: how a run ended.
STATUSES = ("converged", "gap_reached", "max_steps", "stalled", "diverged")
# Without a `gap_tolerance`, a stationary point counts as converged only this
# close to f* (relative): a gradient test alone also passes at saddles, and
# the line search's round-off stop fires at any point where f is huge.
CONVERGED_RELATIVE_GAP = 1e-6
# A run whose f exceeds its starting value this many times has diverged even
# while f is finite: SGD with a huge learning rate reaches f ~ 1e150, where
# the polish would crawl through its whole budget at a step size ~ 1e-80.
# Gradient descent and L-BFGS never increase f, so this only stops SGD/Adam.
BLOW_UP = 1e12


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
    lr=None,
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
    or infinite (e.g. `init_scale=nan`, `lr=nan`, a learning rate so large
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
        steps, lr, batch_size: override the defaults above (None: default;
            steps and batch_size must be whole numbers >= 1, batch_size <= N).
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
    K = checks.count(num_classes, "num_classes", minimum=2)
    d = checks.count(feature_dim, "feature_dim")
    class_counts(K, n_per_class)  # n or K counts: checked here
    # None means "the method's default"; 0 used to mean that too, silently.
    steps = checks.optional_count(steps, "steps")
    batch_size = checks.optional_count(batch_size, "batch_size")
    record_every = checks.optional_count(record_every, "record_every")
    polish_budget = checks.count(polish_steps, "polish_steps", minimum=0)
    gradient_tolerance = checks.nonnegative(gradient_tolerance, "gradient_tolerance")
    if gap_tolerance is not None:
        gap_tolerance = checks.nonnegative(gap_tolerance, "gap_tolerance")
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
        recorder = _Recorder(problem, best, method, progress, record_metrics, gap_tolerance)
        recorder.start()
        main_steps, polish_steps, gap_before_polish = 0, 0, float("nan")
        if method == "lbfgs":
            # Each record ends one compiled L-BFGS chunk (its state carries
            # over, so the iterates are the same for any record_every).
            x, main_steps, stop = _run_lbfgs(
                problem, x, steps or 2000, gradient_tolerance, record_every or 1, recorder
            )
        elif method == "gd":
            x, main_steps, stop = _run_gd(
                problem, x, steps or 20000, gradient_tolerance, record_every or 1, recorder
            )
        else:
            x, main_steps, stop = _run_minibatch(
                problem, x, method, steps, lr, batch_size, record_every, seed, recorder
            )
            gap_before_polish = recorder.trajectory[-1]["gap"]
            # Only a run that used up its steps is polished: one at its gap
            # target needs nothing more, and from a non-finite point there is
            # no descent to follow.
            if polish and stop == "budget":
                x, end, stop = _run_gd(
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
        gradient_norm = _max_abs(problem.value_and_grad(x)[1])
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


class _Recorder:
    """Keeps the trajectory and a stopwatch that pauses while recording, so
    `seconds` measures optimization only."""

    def __init__(self, problem, best, method, progress, record_metrics, gap_tolerance):
        self.problem, self.best, self.method = problem, best, method
        self.progress, self.record_metrics = progress, record_metrics
        self.gap_tolerance = gap_tolerance
        self.trajectory = []
        self.blow_up_at = None  # f above this has diverged; set at the first record
        self.elapsed = 0.0
        self._started = None

    def start(self):
        self._started = time.perf_counter()

    def pause(self):
        self.elapsed += time.perf_counter() - self._started

    def record(self, step, x, value, phase="main"):
        """Records a point. Returns why the run must stop here, or None:
        "diverged" (f is NaN, infinite or past `BLOW_UP` times its first
        record) or "gap" (the gap target is met)."""
        # Reading the value waits for the computation that produced it: JAX
        # dispatches asynchronously, and the stopwatch must stop after the
        # work, not after its dispatch. The stopping test needs it anyway.
        value = float(backend.to_numpy(value))
        self.pause()
        # Without f* (d < K - 1) there is no gap: NaN keeps the rows' format.
        gap = value - self.best.value if self.best is not None else math.nan
        row = {
            "step": int(step),
            "phase": phase,
            "objective": value,
            "gap": gap,
            "relative_gap": gap / abs(self.best.value) if self.best is not None else math.nan,
            "seconds": self.elapsed,
        }
        if self.record_metrics:
            W, H, b = self.problem.unflatten_numpy(x)
            row.update(_nc_metrics(W, H, b, self.problem.labels))
        self.trajectory.append(row)
        if self.progress:
            self.progress(self.method, row)
        self.start()
        if self.blow_up_at is None:
            self.blow_up_at = BLOW_UP * max(abs(value), 1.0)
        if not value <= self.blow_up_at:  # also true for NaN
            return "diverged"
        if self.gap_tolerance is not None and abs(row["relative_gap"]) <= self.gap_tolerance:
            return "gap"
        return None


def _nc_metrics(W, H, b, labels):
    from nc_keras import collapse

    if not all(np.all(np.isfinite(part)) for part in (W, H, b)):
        # A diverged point: the metrics' SVDs would fail on it.
        return {key: math.nan for key in NC_KEYS}
    with warnings.catch_warnings():
        # At or near the origin the metrics are 0/0 and NaN, by design.
        warnings.simplefilter("ignore", RuntimeWarning)
        measured = collapse.metrics(H.T, labels, W, b)
    return {key: float(measured[key]) for key in NC_KEYS}


def _max_abs(tensor):
    return float(backend.to_numpy(keras.ops.max(keras.ops.abs(tensor))))


# Relative changes of f below this are float64 round-off (a few ulps).
_ROUND_OFF = 1e-15


def _run_gd(problem, x, max_steps, tolerance, every, recorder, first_step=0, phase="main"):
    """Backtracking gradient descent (see `solve`). Returns (x, last step,
    stop), stop one of "gradient", "round_off", "gap", "diverged", "budget";
    the final point is always recorded."""
    step_size = 1.0
    step = first_step
    value, grad = problem.value_and_grad(x)
    stop = recorder.record(step, x, value, phase)
    recorded = step
    while stop is None:
        if step - first_step >= max_steps:
            stop = "budget"
            break
        value_now = float(backend.to_numpy(value))
        squared_norm = float(backend.to_numpy(keras.ops.sum(grad * grad)))
        # With a NaN or infinite f or gradient every Armijo test below fails
        # and the step halving would never end.
        if not (math.isfinite(value_now) and math.isfinite(squared_norm)):
            stop = "diverged"
            break
        if _max_abs(grad) <= tolerance:
            stop = "gradient"
            break
        # Capped so that it stays finite: halving an infinite step never
        # reaches the round-off stop.
        step_size = min(2.0 * step_size, sys.float_info.max)
        while True:
            predicted_decrease = 0.5 * step_size * squared_norm
            if predicted_decrease <= _ROUND_OFF * abs(value_now):
                # f can no longer resolve the decrease the Armijo test asks
                # for: the iterate is stationary up to float64 round-off.
                stop = "round_off"
                break
            candidate = x - step_size * grad
            # A NaN or infinite trial value (an overflowing step) fails the
            # test like any other increase.
            value_new = float(backend.to_numpy(problem.value(candidate)))
            if value_new <= value_now - predicted_decrease:
                break
            step_size /= 2.0
        if stop is not None:
            break
        x = candidate
        step += 1
        value, grad = problem.value_and_grad(x)
        if step % every == 0:
            stop = recorder.record(step, x, value, phase)
            recorded = step
    if recorded != step:
        stop = recorder.record(step, x, value, phase) or stop
    return x, step, stop


def _run_lbfgs(problem, x, max_steps, tolerance, every, recorder):
    """Returns (x, iterations, stop), stop one of "gradient", "gap",
    "diverged", "budget", "stalled" (the line search found no descent)."""

    def callback(iterations, position, value):
        stop = recorder.record(iterations, position, value)
        if stop:
            raise _Stop(position, iterations, stop)

    stop = recorder.record(0, x, problem.value(x))
    if stop:
        return x, 0, stop
    try:
        result = backend.lbfgs_minimize(
            problem.value_and_grad,
            x,
            max_iterations=max_steps,
            tolerance=tolerance,
            history=10,
            callback=callback,
            callback_every=every,
        )
    except _Stop as stop:
        return stop.position, stop.iterations, stop.reason
    if result.converged:
        stop = "gradient"
    elif not math.isfinite(result.value):
        stop = "diverged"
    else:
        stop = "budget" if result.iterations >= max_steps else "stalled"
    return result.position, result.iterations, stop


class _Stop(Exception):
    """Ends the L-BFGS loop from its callback (a record's stop reason)."""

    def __init__(self, position, iterations, reason):
        super().__init__(reason)
        self.position, self.iterations, self.reason = position, iterations, reason


# The minibatch updates on the flat vector x, given the minibatch gradient g.
# They are the textbook rules, written out here so that one compiled call does
# gradient and update together (`Problem.minibatch_step`).


def _sgd_step(x, grad, velocity, lr, momentum):
    """SGD with heavy-ball momentum, PyTorch's convention (the paper's):
    v <- mu v + g;  x <- x - lr v. Returns (x, v)."""
    velocity = momentum * velocity + grad
    return x - lr * velocity, velocity


def _adam_step(x, grad, first, second, count, lr, beta_1, beta_2, epsilon):
    """Adam (Kingma & Ba) at step t = `count` (1-based), no weight decay:
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    x <- x - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Returns (x, m, v)."""
    first = beta_1 * first + (1 - beta_1) * grad
    second = beta_2 * second + (1 - beta_2) * grad * grad
    first_hat = first / (1 - beta_1**count)
    second_hat = second / (1 - beta_2**count)
    return x - lr * first_hat / (keras.ops.sqrt(second_hat) + epsilon), first, second


def _run_minibatch(problem, x, method, steps, lr, batch_size, every, seed, recorder):
    """Returns (x, steps done, stop), stop one of "gap", "diverged", "budget"."""
    steps = steps or 1000
    batch_size = batch_size or max(1, problem.N // 10)
    if not 1 <= batch_size <= problem.N:
        raise ValueError(f"batch_size must be in [1, N={problem.N}]; got {batch_size}")
    batches_per_epoch = problem.N // batch_size
    every = every or batches_per_epoch
    rng = np.random.default_rng(seed + 1)
    update = problem.minibatch_step(_sgd_step if method == "sgd" else _adam_step)
    zeros = keras.ops.zeros_like(x)
    state = (zeros,) if method == "sgd" else (zeros, zeros)
    base_lr = lr if lr is not None else (0.5 if method == "sgd" else 0.1)
    stop = recorder.record(0, x, problem.value(x))
    if stop:
        return x, 0, stop
    order = None
    for step in range(steps):
        position = step % batches_per_epoch
        if position == 0:
            order = rng.permutation(problem.N)
        # Fixed-size batches (the remainder of an epoch is dropped) keep one
        # compiled shape.
        columns = keras.ops.convert_to_tensor(
            order[position * batch_size : (position + 1) * batch_size], dtype="int32"
        )
        decay = (0.1 if step >= steps // 2 else 1.0) * (0.1 if step >= 3 * steps // 4 else 1.0)
        rate = backend.to_tensor(base_lr * decay)
        if method == "sgd":
            x, velocity = update(x, columns, *state, rate, backend.to_tensor(0.9))
            state = (velocity,)
        else:
            x, first, second = update(
                x,
                columns,
                *state,
                backend.to_tensor(step + 1.0),
                rate,
                backend.to_tensor(0.9),
                backend.to_tensor(0.999),
                backend.to_tensor(1e-12),
            )
            state = (first, second)
        if (step + 1) % every == 0 or step + 1 == steps:
            # Records are the only place the loop reads f back (each read
            # waits for the device), so they are where a NaN stops it.
            stop = recorder.record(step + 1, x, problem.value(x))
            if stop:
                return x, step + 1, stop
    return x, steps, "budget"


def _verdict(problem, x, best, stop, gradient_tolerance, gap_tolerance):
    """(status, message) for the final point x of a run that ended by `stop`.

    Judged at x itself, not from `stop` alone: a step budget can end at the
    optimum, and the round-off stop also fires where f is astronomically
    large (a run that blew up without overflowing).
    """
    value, grad = problem.value_and_grad(x)
    value, largest = float(backend.to_numpy(value)), _max_abs(grad)
    if stop == "diverged" or not (math.isfinite(value) and math.isfinite(largest)):
        return "diverged", (
            f"diverged: f = {value:.3g}, largest gradient entry {largest:.3g} "
            f"(NaN, infinite or over {BLOW_UP:.0e} times the starting f: check "
            "init_scale and lr)"
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
