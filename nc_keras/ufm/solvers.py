"""Minimizing eq. (3) from a random start: gradient descent, SGD, Adam, L-BFGS.

`solve` runs one method on one `Problem` and records the objective, the gap
f - f* to the exact minimum (`optimum`: Theorem 3.1 for cross-entropy,
`nc_keras.ufm.optima` for the other losses), NC1-NC4 and the wall time along
the way. Where no exact minimum is known (imbalanced classes; focal loss with
large penalties) the gap is NaN and a run is judged by its gradient norm. All arithmetic is float64 on the active backend; the L-BFGS loop
itself is `nc_keras.backend.lbfgs_minimize`.
"""

import dataclasses
import time
import warnings

import keras
import numpy as np

from nc_keras import backend
from nc_keras.ufm import losses
from nc_keras.ufm.problem import cached_problem
from nc_keras.ufm.theory import (
    DEFAULT_LAMBDA,
    Optimum,
    OptimumUnknownError,
    optimum,
    random_start,
)

__all__ = ["METHODS", "NC_KEYS", "SolveResult", "solve"]

METHODS = ("gd", "sgd", "adam", "lbfgs")
NC_KEYS = ("nc1", "nc2", "nc3", "nc4")


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
    optimum: None where no exact minimum is known (gaps are then NaN);
    gradient_norm: the largest gradient entry at the final point.
    """

    method: str
    seed: int
    optimum: Optimum
    trajectory: list
    steps: int
    polish_steps: int
    gap_before_polish: float
    seconds: float
    converged: bool
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

    Args:
        num_classes, feature_dim, n_per_class: K, d, n; `n_per_class` may be
            K counts (imbalanced classes: no exact f*, so no gap).
        lambda_w, lambda_h, lambda_b: weight decay of eq. (3).
        method: one of `METHODS`. seed: the random start.
        steps, lr, batch_size: override the defaults above.
        polish: end "sgd"/"adam" with the full-batch phase; polish_steps: its
            iteration budget.
        record_every: record every this many steps (default: every step for
            "gd" and "lbfgs", every epoch for "sgd" and "adam").
        record_metrics: compute NC1-NC4 at each record.
        progress: optional callable(method, record_dict) called at each record.
        loss, smoothing, gamma: the loss of eq. (3) (`nc_keras.ufm.losses.get`).
    Returns:
        `SolveResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    lambdas = (lambda_w, lambda_h, lambda_b)
    try:
        best = optimum(
            num_classes, n_per_class, *lambdas, loss, smoothing, gamma, feature_dim=feature_dim
        )
    except OptimumUnknownError as unknown:
        if gap_tolerance is not None:
            raise ValueError(f"gap_tolerance needs the exact f*: {unknown}") from unknown
        best = None  # no exact f*: the gradient norm is the only score
    with backend.float64():
        problem = cached_problem(
            num_classes, feature_dim, n_per_class, lambdas, losses.get(loss, smoothing, gamma)
        )
        x = problem.flatten(*random_start(num_classes, feature_dim, n_per_class, seed, init_scale))
        recorder = _Recorder(problem, best, method, progress, record_metrics, gap_tolerance)
        recorder.start()
        polish_budget = polish_steps
        main_steps, polish_steps, gap_before_polish = 0, 0, float("nan")
        if method == "lbfgs":
            # Each record ends one compiled L-BFGS chunk (its state carries
            # over, so the iterates are the same for any record_every).
            x, main_steps, converged = _run_lbfgs(
                problem, x, steps or 2000, gradient_tolerance, record_every or 1, recorder
            )
        elif method == "gd":
            x, main_steps, converged = _run_gd(
                problem, x, steps or 20000, gradient_tolerance, record_every or 1, recorder
            )
        else:
            x, main_steps, done = _run_minibatch(
                problem, x, method, steps, lr, batch_size, record_every, seed, recorder
            )
            gap_before_polish = recorder.trajectory[-1]["gap"]
            converged = done
            if polish and not done:
                x, polish_steps, converged = _run_gd(
                    problem,
                    x,
                    polish_budget,
                    gradient_tolerance,
                    record_every or 1,
                    recorder,
                    first_step=main_steps,
                    phase="polish",
                )
                polish_steps -= main_steps
        recorder.pause()
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
        converged=bool(converged),
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
        self.elapsed = 0.0
        self._started = None

    def start(self):
        self._started = time.perf_counter()

    def pause(self):
        self.elapsed += time.perf_counter() - self._started

    def record(self, step, x, value, phase="main"):
        """Records a point; True when the gap target (if any) is reached."""
        # Reading the value waits for the computation that produced it: JAX
        # dispatches asynchronously, and the stopwatch must stop after the
        # work, not after its dispatch. The stopping test needs it anyway.
        value = float(backend.to_numpy(value))
        self.pause()
        gap = value - self.best.value if self.best is not None else float("nan")
        row = {
            "step": int(step),
            "phase": phase,
            "objective": value,
            "gap": gap,
            "relative_gap": gap / abs(self.best.value) if self.best is not None else gap,
            "seconds": self.elapsed,
        }
        if self.record_metrics:
            W, H, b = self.problem.unflatten_numpy(x)
            row.update(_nc_metrics(W, H, b, self.problem.labels))
        self.trajectory.append(row)
        if self.progress:
            self.progress(self.method, row)
        self.start()
        return self.gap_tolerance is not None and abs(row["relative_gap"]) <= self.gap_tolerance


def _nc_metrics(W, H, b, labels):
    from nc_keras import collapse

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
    step_size = 1.0
    step = first_step
    value, grad = problem.value_and_grad(x)
    if recorder.record(step, x, value, phase):
        return x, step, True
    converged = False
    while step - first_step < max_steps:
        if _max_abs(grad) <= tolerance:
            converged = True
            break
        squared_norm = float(backend.to_numpy(keras.ops.sum(grad * grad)))
        step_size *= 2.0
        value_now = float(backend.to_numpy(value))
        while True:
            predicted_decrease = 0.5 * step_size * squared_norm
            if predicted_decrease <= _ROUND_OFF * abs(value_now):
                # f can no longer resolve the decrease the Armijo test asks
                # for: the iterate is at the minimum up to float64 round-off.
                return x, step, True
            candidate = x - step_size * grad
            value_new = float(backend.to_numpy(problem.value(candidate)))
            if value_new <= value_now - predicted_decrease:
                break
            step_size /= 2.0
        x = candidate
        step += 1
        value, grad = problem.value_and_grad(x)
        if step % every == 0 and recorder.record(step, x, value, phase):
            return x, step, True
    if step % every:
        recorder.record(step, x, value, phase)
    return x, step, converged


def _run_lbfgs(problem, x, max_steps, tolerance, every, recorder):
    def callback(iterations, position, value):
        if recorder.record(iterations, position, value):
            raise _TargetReached(position, iterations)

    recorder.record(0, x, problem.value(x))
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
    except _TargetReached as stop:
        return stop.position, stop.iterations, True
    return result.position, result.iterations, result.converged


class _TargetReached(Exception):
    def __init__(self, position, iterations):
        super().__init__("gap target reached")
        self.position, self.iterations = position, iterations


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
    recorder.record(0, x, problem.value(x))
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
            if recorder.record(step + 1, x, problem.value(x)):
                return x, step + 1, True
    return x, steps, False
