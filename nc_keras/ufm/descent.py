"""The step loops that minimize eq. (3) on a flat vector x: backtracking
gradient descent, L-BFGS and minibatch SGD/Adam.

Each loop runs from x on one `Problem` and returns (x, steps, stop), `stop`
saying which rule ended it; `Recorder` (`nc_keras.ufm.trajectory`) records
the points and can end a loop itself ("diverged", "gap"). Which method,
with which defaults, and whether the run converged is `nc_keras.ufm.solvers`.
The minibatch updates are the optimizers' own rules
(`nc_keras.optimizers.sgd_direction`, `adam_direction`), compiled together
with the minibatch gradient (`Problem.minibatch_step`).
"""

import math
import sys

import keras
import numpy as np

from nc_keras import backend
from nc_keras.optimizers import adam_direction, sgd_direction

__all__ = ["largest_entry", "run_gd", "run_lbfgs", "run_minibatch"]


def largest_entry(tensor):
    """max |tensor_i|, as a Python float."""
    return float(backend.to_numpy(keras.ops.max(keras.ops.abs(tensor))))


# Relative changes of f below this are float64 round-off (a few ulps).
_ROUND_OFF = 1e-15


def run_gd(problem, x, max_steps, tolerance, every, recorder, first_step=0, phase="main"):
    """Backtracking gradient descent (see `nc_keras.ufm.solvers.solve`). Returns (x, last step,
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
        if largest_entry(grad) <= tolerance:
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


def run_lbfgs(problem, x, max_steps, tolerance, every, recorder):
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


def _sgd_update(x, grad, buffer, lr, momentum):
    """x <- x - lr * direction by `sgd_direction` (PyTorch's momentum, no
    dampening). Returns (x, buffer)."""
    direction, buffer = sgd_direction(grad, buffer, momentum)
    return x - lr * direction, buffer


def _adam_update(x, grad, m, v, count, lr, beta_1, beta_2, epsilon):
    """x <- x - lr * direction by `adam_direction` at step t = `count`
    (1-based). Returns (x, m, v)."""
    direction, m, v, _ = adam_direction(grad, m, v, count, beta_1, beta_2, epsilon)
    return x - lr * direction, m, v


def run_minibatch(problem, x, method, steps, lr, batch_size, every, seed, recorder):
    """Returns (x, steps done, stop), stop one of "gap", "diverged", "budget"."""
    steps = steps or 1000
    batch_size = batch_size or max(1, problem.N // 10)
    if not 1 <= batch_size <= problem.N:
        raise ValueError(f"batch_size must be in [1, N={problem.N}]; got {batch_size}")
    batches_per_epoch = problem.N // batch_size
    every = every or batches_per_epoch
    rng = np.random.default_rng(seed + 1)
    update = problem.minibatch_step(_sgd_update if method == "sgd" else _adam_update)
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
            x, m, v = update(
                x,
                columns,
                *state,
                backend.to_tensor(step + 1.0),
                rate,
                backend.to_tensor(0.9),
                backend.to_tensor(0.999),
                backend.to_tensor(1e-12),
            )
            state = (m, v)
        if (step + 1) % every == 0 or step + 1 == steps:
            # Records are the only place the loop reads f back (each read
            # waits for the device), so they are where a NaN stops it.
            stop = recorder.record(step + 1, x, problem.value(x))
            if stop:
                return x, step + 1, stop
    return x, steps, "budget"
