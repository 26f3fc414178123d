r"""The unconstrained feature model (UFM) of Zhu et al. (NeurIPS 2021), eq. (3).

K classes with n samples each (N = nK), classifier W (K x d), features
H (d x N, one column per sample, sorted by class by `class_labels`), bias b (K):

    f(W, H, b) = (1/N) sum_{k,i} CE(W h_{k,i} + b, y_k)
                 + lW/2 ||W||_F^2 + lH/2 ||H||_F^2 + lb/2 ||b||^2      (3)

The loss is a sample mean; the penalty on H is a plain sum over all N columns.

What this module gives:

* `objective`: eq. (3) in `keras.ops`, differentiable on every backend;
* `optimum`: the exact global minimum from Theorem 3.1 (derivation there);
* `construct_optimum`: an explicit minimizer (W*, H*, b*);
* `solve`: "gd", "sgd", "adam" or "lbfgs" from a random start, recording
  the objective, the gap f - f*, NC1-NC4 (`nc_keras.collapse.metrics`) and
  the wall time along the way;
* `hessian_min_eigenvalue`: the smallest Hessian eigenvalues by
  Hessian-vector products and Lanczos, for Theorem 3.2 (strict saddles);
* `landscape` / `plot_landscape` / `plot_trajectory`: many random starts
  times every solver, as a table and a figure (`make demo`, the recipe).

All numbers are float64 on every backend (`nc_keras.backend.float64`);
backend-specific code (compilation, gradients, L-BFGS) is in `nc_keras.backend`.
"""

import dataclasses
import functools
import math
import time
import warnings

import keras
import numpy as np

from nc_keras import backend

__all__ = [
    "METHODS",
    "DEFAULT_LAMBDA",
    "class_labels",
    "objective",
    "Optimum",
    "optimum",
    "construct_optimum",
    "random_start",
    "solve",
    "SolveResult",
    "hessian_min_eigenvalue",
    "rotation_zero_modes",
    "landscape",
    "LandscapeResult",
    "plot_trajectory",
    "plot_landscape",
]

METHODS = ("gd", "sgd", "adam", "lbfgs")
# The weight decay of the paper's experiments is 5e-4; the UFM checks use a
# larger 5e-3 so that the optimum is well away from the origin yet the
# problem stays well conditioned (the minimum's curvature scales with it).
DEFAULT_LAMBDA = 5e-3
NC_KEYS = ("nc1", "nc2", "nc3", "nc4")


def class_labels(num_classes, n_per_class):
    """Labels 0..K-1, each repeated n times: the column order of H."""
    return np.repeat(np.arange(int(num_classes)), int(n_per_class))


def objective(W, H, b, labels, lambda_w, lambda_h, lambda_b):
    """f(W, H, b) of eq. (3), computed with `keras.ops` (differentiable).

    Args:
        W: (K, d) classifier; H: (d, N) features, column i for sample i;
        b: (K,) bias; labels: (N,) integers in [0, K).
        lambda_w, lambda_h, lambda_b: the weight-decay parameters.
    Returns:
        A scalar tensor of the active backend. NumPy inputs are converted to
        float64 tensors first (JAX with x64 enabled for the computation).
    """
    with backend.float64():
        W, H, b = (
            part if keras.ops.is_tensor(part) else backend.to_tensor(part) for part in (W, H, b)
        )
        num_classes = W.shape[0]
        onehot = keras.ops.transpose(keras.ops.one_hot(labels, num_classes, dtype=W.dtype))
        return _objective(W, H, b, onehot, lambda_w, lambda_h, lambda_b)


def _objective(W, H, b, onehot, lambda_w, lambda_h, lambda_b, columns=None):
    """eq. (3) with one-hot labels (K, N); `columns` averages the loss over a
    minibatch of samples instead (an unbiased estimate of the loss term)."""
    ops = keras.ops
    if columns is not None:
        features = ops.take(H, columns, axis=1)
        onehot = ops.take(onehot, columns, axis=1)
    else:
        features = H
    # Keras's type promotion maps float64 to float32 outside TensorFlow:
    # ops.matmul on torch and ops.mean on JAX silently compute in float32.
    # ops.einsum and ops.sum keep float64 on every backend (tests check it).
    logits = ops.einsum("kd,dn->kn", W, features) + ops.expand_dims(b, 1)
    per_sample = ops.logsumexp(logits, axis=0) - ops.sum(onehot * logits, axis=0)
    cross_entropy = ops.sum(per_sample) / per_sample.shape[0]
    penalty = (
        lambda_w * ops.sum(W * W) + lambda_h * ops.sum(H * H) + lambda_b * ops.sum(b * b)
    ) / 2
    return cross_entropy + penalty


@dataclasses.dataclass(frozen=True)
class Optimum:
    """The global minimum of eq. (3) and the scales of its minimizers.

    value: f*; w_norm: the common row norm w* of W*; h_norm: the common norm
    of every feature column h*; bias: the common entry b* of b* = b* 1
    (0 whenever lambda_b > 0; when lambda_b = 0 any constant works and 0 is
    reported); at_origin: whether the minimizer is (0, 0, 0).
    """

    value: float
    w_norm: float
    h_norm: float
    bias: float
    at_origin: bool


def optimum(num_classes, n_per_class, lambda_w, lambda_h, lambda_b):
    r"""The global minimum of eq. (3), in closed form (Theorem 3.1).

    Assumes balanced classes and d >= K - 1 (the value does not depend on d).

    Derivation. By Theorem 3.1 (eq. (4), (5)) every global minimizer has rows
    of equal norm w, W W^T = w^2 K/(K-1) (I - 11^T/K), features
    h_{k,i} = s w_k with s = sqrt(lW / (lH n)), and b = b 1 (b = 0 if
    lb > 0; a constant b never changes the loss). For a sample of class k the
    logits W h_{k,i} = s W w_k are s w^2 for class k and -s w^2/(K-1) for the
    other K-1 classes, so every sample has the same cross-entropy

        log(1 + (K-1) exp(-c rho)),   rho = w^2,  c = s K/(K-1).

    The penalties are lW/2 K w^2 (W) and lH/2 N s^2 w^2 = lW/2 K w^2 (H), so
    along the structured family

        g(rho) = log(1 + (K-1) exp(-c rho)) + a rho,   a = K lW,  rho >= 0,

    and f* = min g. g is strictly convex (g'' > 0), with

        g'(rho) = a - c (K-1) e^{-c rho} / (1 + (K-1) e^{-c rho}).

    If g'(0) = a - c (K-1)/K >= 0 the penalties win: rho* = 0, the minimizer is
    the origin and f* = log K. Otherwise g'(rho) = 0 gives
    (K-1) e^{-c rho} (c - a) = a, i.e.

        rho* = (1/c) log((K-1)(c - a) / a),
        f*   = log(c / (c - a)) + (a/c) log((K-1)(c - a) / a),

    (using 1 + (K-1) e^{-c rho*} = c / (c - a)), w* = sqrt(rho*) and
    ||h*|| = s w*.
    """
    K, n = int(num_classes), int(n_per_class)
    if K < 2 or n < 1:
        raise ValueError(f"need num_classes >= 2 and n_per_class >= 1; got {K}, {n}")
    if lambda_w <= 0 or lambda_h <= 0 or lambda_b < 0:
        raise ValueError(
            "Theorem 3.1 needs lambda_w > 0, lambda_h > 0, lambda_b >= 0; got "
            f"{lambda_w}, {lambda_h}, {lambda_b}"
        )
    scale = math.sqrt(lambda_w / (lambda_h * n))
    c = scale * K / (K - 1)
    a = K * lambda_w
    if a >= c * (K - 1) / K:
        return Optimum(value=math.log(K), w_norm=0.0, h_norm=0.0, bias=0.0, at_origin=True)
    log_ratio = math.log((K - 1) * (c - a) / a)
    rho = log_ratio / c
    value = math.log(c / (c - a)) + (a / c) * log_ratio
    w_norm = math.sqrt(rho)
    return Optimum(
        value=value, w_norm=w_norm, h_norm=scale * w_norm, bias=0.0, at_origin=False
    )


def construct_optimum(
    num_classes, feature_dim, n_per_class, lambda_w, lambda_h, lambda_b, rotation_seed=None
):
    """An explicit global minimizer of eq. (3): (W, H, b, labels), NumPy float64.

    W = w* M^T with M the K-simplex ETF of eq. (5) (`nc_keras.layers.simplex_etf`,
    P = first K columns of I_d, or a random rotation from `rotation_seed`),
    h_{k,i} = sqrt(lW/(lH n)) w_k as in eq. (4), b = 0. Needs d >= K - 1.
    """
    from nc_keras.layers import simplex_etf

    best = optimum(num_classes, n_per_class, lambda_w, lambda_h, lambda_b)
    W = best.w_norm * simplex_etf(num_classes, feature_dim, rotation_seed).T
    labels = class_labels(num_classes, n_per_class)
    H = math.sqrt(lambda_w / (lambda_h * n_per_class)) * W[labels].T
    b = np.full(int(num_classes), best.bias)
    return W, H, b, labels


def random_start(num_classes, feature_dim, n_per_class, seed=0, scale=1.0):
    """(W, H, b) with i.i.d. N(0, scale^2) entries, NumPy float64."""
    rng = np.random.default_rng(seed)
    K, d, N = int(num_classes), int(feature_dim), int(num_classes) * int(n_per_class)
    return (
        scale * rng.standard_normal((K, d)),
        scale * rng.standard_normal((d, N)),
        scale * rng.standard_normal(K),
    )


class _Problem:
    """One UFM instance on the active backend, over a flat float64 vector
    x = [vec(W), vec(H), b], with its compiled functions (built once, reused
    by every start and solver on the same instance)."""

    def __init__(self, num_classes, feature_dim, n_per_class, lambdas, labels=None):
        self.K, self.d = int(num_classes), int(feature_dim)
        self.n = None if n_per_class is None else int(n_per_class)
        self.lambdas = tuple(float(v) for v in lambdas)
        self.labels = class_labels(self.K, self.n) if labels is None else np.asarray(labels)
        self.N = len(self.labels)
        self.sizes = (self.K * self.d, self.d * self.N, self.K)
        self.onehot = backend.to_tensor(np.eye(self.K)[:, self.labels])
        self.value = backend.compile(self._flat_objective)
        self.value_and_grad = backend.compile(backend.value_and_grad(self._flat_objective))
        self.batch_value_and_grad = backend.compile(
            backend.value_and_grad(self._flat_batch_objective)
        )
        self._hvp = None
        self._steps = {}

    def split(self, x):
        kd, dn, _ = self.sizes
        W = keras.ops.reshape(x[:kd], (self.K, self.d))
        H = keras.ops.reshape(x[kd : kd + dn], (self.d, self.N))
        return W, H, x[kd + dn :]

    def flatten(self, W, H, b):
        return backend.to_tensor(
            np.concatenate([np.ravel(W), np.ravel(H), np.ravel(b)]).astype(np.float64)
        )

    def unflatten_numpy(self, x):
        W, H, b = self.split(backend.to_numpy(x))
        return np.asarray(W), np.asarray(H), np.asarray(b)

    def _flat_objective(self, x):
        W, H, b = self.split(x)
        return _objective(W, H, b, self.onehot, *self.lambdas)

    def _flat_batch_objective(self, x, columns):
        W, H, b = self.split(x)
        return _objective(W, H, b, self.onehot, *self.lambdas, columns=columns)

    def hvp(self):
        if self._hvp is None:
            self._hvp = backend.compile(backend.hessian_vector_product(self._flat_objective))
        return self._hvp

    def step_function(self, method):
        """A compiled minibatch update (x, state..., columns, lr) -> new x, state."""
        if method not in self._steps:
            self._steps[method] = backend.compile(
                self._sgd_step if method == "sgd" else self._adam_step
            )
        return self._steps[method]

    def _sgd_step(self, x, velocity, columns, lr, momentum):
        # PyTorch's momentum convention (as the paper used): v <- mu v + g.
        _, grad = backend.value_and_grad(self._flat_batch_objective)(x, columns)
        velocity = momentum * velocity + grad
        return x - lr * velocity, velocity

    def _adam_step(self, x, first, second, count, columns, lr, beta_1, beta_2, epsilon):
        _, grad = backend.value_and_grad(self._flat_batch_objective)(x, columns)
        first = beta_1 * first + (1 - beta_1) * grad
        second = beta_2 * second + (1 - beta_2) * grad * grad
        first_hat = first / (1 - beta_1**count)
        second_hat = second / (1 - beta_2**count)
        return x - lr * first_hat / (keras.ops.sqrt(second_hat) + epsilon), first, second


@functools.lru_cache(maxsize=8)
def _cached_problem(backend_name, num_classes, feature_dim, n_per_class, lambdas):
    # Keyed by backend too: a process may switch backends (tests do). The
    # compiled functions live as long as the entry, so repeated solves of
    # one configuration (CLI runs in a session, landscapes, tests) trace once.
    return _Problem(num_classes, feature_dim, n_per_class, lambdas)


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

    @property
    def final(self):
        return self.trajectory[-1]


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
        gap = value - self.best.value
        row = {
            "step": int(step),
            "phase": phase,
            "objective": value,
            "gap": gap,
            "relative_gap": gap / abs(self.best.value),
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
    _problem=None,
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
        num_classes, feature_dim, n_per_class: K, d, n (balanced classes).
        lambda_w, lambda_h, lambda_b: weight decay of eq. (3).
        method: one of `METHODS`. seed: the random start.
        steps, lr, batch_size: override the defaults above.
        polish: end "sgd"/"adam" with the full-batch phase; polish_steps: its
            iteration budget.
        record_every: record every this many steps (default: every step for
            "gd" and "lbfgs", every epoch for "sgd" and "adam").
        record_metrics: compute NC1-NC4 at each record.
        progress: optional callable(method, record_dict) called at each record.
    Returns:
        `SolveResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    lambdas = (lambda_w, lambda_h, lambda_b)
    best = optimum(num_classes, n_per_class, *lambdas)
    with backend.float64():
        problem = _problem or _cached_problem(
            backend.name(), int(num_classes), int(feature_dim), int(n_per_class), lambdas
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
    )


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
    reached = []

    def callback(iterations, position, value):
        if recorder.record(iterations, position, value):
            reached.append(True)
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


def _run_minibatch(problem, x, method, steps, lr, batch_size, every, seed, recorder):
    steps = steps or 1000
    batch_size = batch_size or max(1, problem.N // 10)
    if not 1 <= batch_size <= problem.N:
        raise ValueError(f"batch_size must be in [1, N={problem.N}]; got {batch_size}")
    batches_per_epoch = problem.N // batch_size
    every = every or batches_per_epoch
    rng = np.random.default_rng(seed + 1)
    update = problem.step_function(method)
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
        rate = base_lr * (0.1 if step >= steps // 2 else 1.0) * (0.1 if step >= 3 * steps // 4 else 1.0)
        rate = backend.to_tensor(rate)
        if method == "sgd":
            x, velocity = update(x, *state, columns, rate, backend.to_tensor(0.9))
            state = (velocity,)
        else:
            x, first, second = update(
                x,
                *state,
                backend.to_tensor(step + 1.0),
                columns,
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


@dataclasses.dataclass
class HessianEigen:
    """Smallest Hessian eigenvalues (ascending) and their unit eigenvectors.

    eigenvectors[:, j] is flat over [vec(W), vec(H), b]; `split(j)` returns
    it as (dW, dH, db) shaped like (W, H, b).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    shapes: tuple

    def split(self, j=0):
        vector = self.eigenvectors[:, j]
        parts, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            parts.append(vector[offset : offset + size].reshape(shape))
            offset += size
        return tuple(parts)


def hessian_min_eigenvalue(
    W, H, b, labels, lambda_w, lambda_h, lambda_b, k=1, tolerance=1e-10, seed=0, dense_up_to=500
):
    """The k smallest eigenvalues of the Hessian of f (eq. (3)) at (W, H, b).

    Matrix-free: Hessian-vector products by autodiff on the active backend
    (`nc_keras.backend.hessian_vector_product`: forward-over-reverse on JAX,
    double backward on TensorFlow and torch) inside a SciPy LinearOperator,
    and Lanczos (`scipy.sparse.linalg.eigsh` on the shifted sigma I - H, whose
    largest eigenvalues are H's smallest; see `_smallest_eigenpairs`). Memory is a few
    vectors of size Kd + dN + K, so it runs where the dense Hessian (the
    square of that) would not fit.

    Theorem 3.2 (d > K, balanced classes): every critical point that is not a
    global minimizer has a negative eigenvalue. At (0, 0, 0) the gradient is
    zero (balanced classes: the mean of softmax(0) - y_k over the samples
    vanishes) and the W-H block of the Hessian is [[lW I, G], [G^T, lH I]] with
    G the loss gradient w.r.t. the logits, so the smallest eigenvalue is about
    -(1/(K sqrt(n)) - sqrt(lW lH)) < 0 for small penalties: following its
    eigenvector lowers f.

    At a global minimizer the Hessian is positive semi-definite with exact
    zero modes from the symmetry f(W Q^T, Q H, b) = f(W, H, b) for every
    orthogonal Q in O(d): the orbit through (W*, H*) is a manifold of
    minimizers of dimension dim O(d) - dim(stabilizer). Rotations that fix
    every row of W* and column of H* are those acting only on the (d - K + 1)
    dimensional complement of their (K - 1)-dimensional span, so there are
    `rotation_zero_modes(K, d)` = d(d-1)/2 - (d-K+1)(d-K)/2 zero eigenvalues
    (one more when lambda_b = 0: adding a constant to b changes nothing).
    Lanczos then reports the smallest eigenvalue as 0 up to round-off.

    Lanczos from one start vector sees each eigenspace through a single
    direction, so with k > 1 it may list a repeated eigenvalue fewer times
    than its multiplicity; the smallest eigenvalue itself is reliable. When
    there are at most `dense_up_to` variables the exact dense Hessian is used
    instead (Kd + dN + K products), which counts multiplicities exactly.

    Args:
        W (K, d), H (d, N), b (K,), labels (N,): the point (NumPy arrays).
        k: how many of the smallest eigenvalues to return.
        tolerance: Lanczos accuracy, relative to the largest eigenvalue.
        dense_up_to: largest number of variables handled densely.
    Returns:
        `HessianEigen`.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    W, H, b = (np.asarray(a, dtype=np.float64) for a in (W, H, b))
    lambdas = (lambda_w, lambda_h, lambda_b)
    with backend.float64():
        problem = _Problem(W.shape[0], W.shape[1], None, lambdas, labels=labels)
        x = problem.flatten(W, H, b)
        hvp = problem.hvp()
        size = int(sum(problem.sizes))

        def matvec(vector):
            product = hvp(x, backend.to_tensor(np.ravel(vector)))
            return backend.to_numpy(product)

        operator = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
        start = np.random.default_rng(seed).standard_normal(size)
        if size <= dense_up_to or k >= size - 1:
            # Single-vector Lanczos finds one vector per eigenspace (repeated
            # eigenvalues, like the rotation zero modes, show up once or a few
            # times); small problems get the exact spectrum from the dense
            # Hessian, assembled column by column from the same products.
            dense = np.column_stack([matvec(column) for column in np.eye(size)])
            values, vectors = np.linalg.eigh((dense + dense.T) / 2)
            values, vectors = values[:k], vectors[:, :k]
        else:
            values, vectors = _smallest_eigenpairs(operator, size, k, tolerance, start, eigsh)
    order = np.argsort(values)
    return HessianEigen(values[order], vectors[:, order], (W.shape, H.shape, b.shape))


def _smallest_eigenpairs(operator, size, k, tolerance, start, eigsh):
    """Lanczos for the k smallest eigenpairs, shifted so it converges.

    ARPACK's test is relative, |residual| <= tol |theta|, which can never hold
    for the cluster of (near-)zero eigenvalues a (near-)minimizer has, so
    which="SA" on H itself can iterate forever. On sigma I - H, with sigma a
    little above the largest eigenvalue, the wanted eigenvalues are the
    largest ones and near sigma, so the test becomes absolute at scale sigma.
    """
    from scipy.sparse.linalg import LinearOperator

    largest = eigsh(operator, k=1, which="LA", tol=1e-3, v0=start, return_eigenvectors=False)
    sigma = 1.05 * abs(float(largest[0])) + 1e-12
    flipped = LinearOperator(
        (size, size), matvec=lambda v: sigma * np.ravel(v) - operator.matvec(v), dtype=np.float64
    )
    values, vectors = eigsh(
        flipped, k=k, which="LA", tol=tolerance, v0=start, maxiter=100 * size
    )
    return sigma - values, vectors


def rotation_zero_modes(num_classes, feature_dim, lambda_b=DEFAULT_LAMBDA):
    """Zero Hessian eigenvalues at a global minimizer (see `hessian_min_eigenvalue`).

    dim O(d) - dim O(d - r) with r = K - 1, the rank of the simplex ETF:
    d(d-1)/2 - (d-r)(d-r-1)/2, plus 1 when lambda_b = 0 (constant bias shift).
    """
    d, r = int(feature_dim), int(num_classes) - 1
    modes = d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2
    return modes + (1 if lambda_b == 0 else 0)


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
    **solve_options,
):
    """The landscape claim of Theorems 3.1 and 3.2, checked numerically.

    Runs `solve` for every method in `methods` from `starts` random starts
    (seeds seed, seed+1, ...; every method gets the same starts) and
    tabulates each run's final relative gap to the exact f* of `optimum`,
    NC1-NC4 and cost. A strict saddle landscape without spurious minima means
    every run ends at f*. `progress`: print one line per finished run.
    `solve_options` go to `solve` (e.g. gradient_tolerance, steps).
    Returns `LandscapeResult` (`.table()`, `.all_reached()`; `plot_landscape`).
    """
    lambdas = (lambda_w, lambda_h, lambda_b)
    best = optimum(num_classes, n_per_class, *lambdas)
    rows, runs = [], []
    with backend.float64():
        problem = _cached_problem(
            backend.name(), int(num_classes), int(feature_dim), int(n_per_class), lambdas
        )
        for method in methods:
            for start in range(starts):
                run = solve(
                    num_classes,
                    feature_dim,
                    n_per_class,
                    *lambdas,
                    method=method,
                    seed=seed + start,
                    _problem=problem,
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
