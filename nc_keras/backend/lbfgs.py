"""Full-batch and mini-batch L-BFGS on a flat parameter vector, per backend.

* tensorflow: `tfp.optimizer.lbfgs_minimize`, compiled with `tf.function`;
* jax: the same algorithm from tfp's JAX substrate, under `jax.jit`. The
  substrate needs two work-arounds, applied by `_tfp_jax()`: on jax >= 0.7,
  `jax.interpreters.xla.pytype_aval_mappings` no longer exists and must be
  re-pointed at JAX's new one (`internals.jax_pytype_aval_mappings`); and the substrate
  try-imports TensorFlow (only to copy docstrings), which would load all of
  TensorFlow into a JAX process, so that import is refused while it loads;
* torch: `torch.optim.LBFGS` with the strong Wolfe line search (tfp uses
  Hager-Zhang's approximate-Wolfe search).

All three use the same history (number of correction pairs) and stop when the
largest gradient entry is at most `tolerance` or after `max_iterations`.
"""

import dataclasses
import sys

import keras

from nc_keras.backend import internals
from nc_keras.backend.autodiff import value_and_grad
from nc_keras.backend.core import compile, name, to_numpy  # noqa: A004


@dataclasses.dataclass
class LBFGSResult:
    position: object  # backend tensor, flat
    value: float
    iterations: int
    converged: bool


def lbfgs_minimize(
    value_and_grad_fn,
    x0,
    max_iterations=1000,
    tolerance=1e-8,
    history=10,
    callback=None,
    callback_every=10,
):
    """Minimize with full-batch L-BFGS on the active backend.

    `value_and_grad_fn(x)` returns (f(x), grad f(x)) for a flat float vector x
    (backend tensor); `x0` is the start. Stops when max |grad| <= `tolerance`
    or after `max_iterations` iterations (each with a line search: tfp's
    Hager-Zhang on TensorFlow and JAX, strong Wolfe on torch). `history` is
    the number of stored correction pairs. If given,
    `callback(iterations, x, value)` runs every `callback_every` iterations
    (the run proceeds in chunks of that many iterations; the optimizer state
    carries over between chunks, so chunking does not change the iterates).
    """
    backend = name()
    if backend in ("tensorflow", "jax"):
        return _lbfgs_tfp(
            value_and_grad_fn, x0, max_iterations, tolerance, history, callback, callback_every
        )
    if backend == "torch":
        return _lbfgs_torch(
            value_and_grad_fn, x0, max_iterations, tolerance, history, callback, callback_every
        )
    raise NotImplementedError(f"backend {backend!r} has no L-BFGS here")


def _tfp_jax():
    """The L-BFGS module of tfp's JAX substrate, loaded with the two work-arounds."""
    import jax.interpreters.xla as xla

    if not hasattr(xla, "pytype_aval_mappings"):
        xla.pytype_aval_mappings = internals.jax_pytype_aval_mappings()

    class _RefuseTensorFlow:
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "tensorflow":
                raise ModuleNotFoundError("tensorflow is not loaded on the JAX backend")

    blocker = None
    if "tensorflow" not in sys.modules:
        blocker = _RefuseTensorFlow()
        sys.meta_path.insert(0, blocker)
    try:
        from tensorflow_probability.substrates.jax.optimizer import lbfgs
    finally:
        if blocker is not None:
            sys.meta_path.remove(blocker)
    return lbfgs


def _tfp_lbfgs():
    """tfp's L-BFGS module (`minimize` is `tfp.optimizer.lbfgs_minimize`):
    TensorFlow's, or its JAX substrate's on JAX."""
    if name() == "jax":
        return _tfp_jax()
    from tensorflow_probability.python.optimizer import lbfgs

    return lbfgs


# Compiled tfp L-BFGS loops, one per (objective, history, tolerance): a
# landscape of many starts on one problem compiles once.
_TFP_LOOPS = {}


def _lbfgs_tfp(value_and_grad_fn, x0, max_iterations, tolerance, history, callback, every):
    lbfgs = _tfp_lbfgs()
    key = (name(), value_and_grad_fn, history, tolerance)
    if key not in _TFP_LOOPS:

        def resume(previous, limit):
            return lbfgs.minimize(
                value_and_grad_fn,
                initial_position=None,
                previous_optimizer_results=previous,
                max_iterations=limit,
                num_correction_pairs=history,
                tolerance=tolerance,
                # Only the gradient test stops the run (as on torch): f and x
                # can stall for an iteration long before the gradient is small.
                f_relative_tolerance=0.0,
                x_tolerance=0.0,
            )

        _TFP_LOOPS[key] = compile(resume, xla_on_tensorflow=True)
    resume = _TFP_LOOPS[key]
    # The starting state (one gradient evaluation, an empty history) is built
    # outside the compiled loop with tfp's own helper, so that one compiled
    # function serves the start and every continuation: tracing tfp's L-BFGS
    # takes seconds, running it milliseconds.
    result = internals.tfp_lbfgs_initial_state(lbfgs, value_and_grad_fn, x0, history, tolerance)
    chunk = every if callback is not None else max_iterations
    iterations = 0
    while True:
        limit = min(iterations + chunk, max_iterations)
        result = resume(result, _int_tensor(limit))
        iterations = int(to_numpy(result.num_iterations))
        done = bool(to_numpy(result.converged)) or bool(to_numpy(result.failed))
        if callback is not None:
            callback(iterations, result.position, float(to_numpy(result.objective_value)))
        if done or iterations >= max_iterations:
            break
    return LBFGSResult(
        position=result.position,
        value=float(to_numpy(result.objective_value)),
        iterations=iterations,
        converged=bool(to_numpy(result.converged)),
    )


def _int_tensor(value):
    # A tensor, not a Python int, so that compiled functions are traced once.
    return keras.ops.convert_to_tensor(value, dtype="int32")


def _lbfgs_torch(value_and_grad_fn, x0, max_iterations, tolerance, history, callback, every):
    import torch

    x = torch.nn.Parameter(x0.detach().clone())
    chunk = every if callback is not None else max_iterations
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=chunk,
        # torch caps the evaluations of a whole `step` call (default
        # 1.25 max_iter), which starves the line search when a step is one
        # chunk of few iterations; 25 per iteration matches tfp's budget.
        max_eval=25 * chunk,
        history_size=history,
        tolerance_grad=tolerance,
        # Only the gradient test should stop the run (as on the other backends).
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        value, grad = value_and_grad_fn(x.detach())
        x.grad = grad.detach().clone()
        return value

    iterations = 0
    value = float("nan")
    converged = False
    while iterations < max_iterations:
        optimizer.param_groups[0]["max_iter"] = min(chunk, max_iterations - iterations)
        optimizer.step(closure)
        done_now = optimizer.state[x]["n_iter"]
        step_count = done_now - iterations
        iterations = done_now
        value, grad = value_and_grad_fn(x.detach())
        value = float(value)
        converged = float(grad.abs().max()) <= tolerance
        if callback is not None:
            callback(iterations, x.detach().clone(), value)
        if converged or step_count == 0:
            break
    return LBFGSResult(
        position=x.detach().clone(), value=value, iterations=iterations, converged=converged
    )


def lbfgs_batch_minimizer(objective, history_size=10, iterations=20, learning_rate=0.1):
    """Mini-batch L-BFGS for network training (Sec. 4.1): one step per batch.

    `objective(position, *batch)` is the batch objective of a flat weight
    vector. Returns `minimize(position, *batch) -> new position`, which runs
    up to `iterations` L-BFGS iterations on that batch.

    * tensorflow, jax: `lbfgs_minimize` of tensorflow-probability (its JAX
      substrate on JAX), compiled once for all batches; each batch starts a
      fresh history (tfp cannot carry curvature pairs over to a different
      objective) and uses tfp's Hager-Zhang line search, which has no
      learning rate (`learning_rate` is unused).
    * torch: one `torch.optim.LBFGS(lr=learning_rate, history_size,
      max_iter=iterations, line_search_fn="strong_wolfe")` kept across
      batches, as the paper's PyTorch code does.
    """
    backend = name()
    grad_fn = value_and_grad(objective)
    if backend in ("tensorflow", "jax"):
        lbfgs = _tfp_lbfgs()

        def minimize(position, *batch):
            result = lbfgs.minimize(
                lambda p: grad_fn(p, *batch),
                initial_position=position,
                max_iterations=iterations,
                num_correction_pairs=history_size,
                tolerance=1e-10,
            )
            return result.position

        return compile(minimize)
    if backend == "torch":
        import torch

        state = {}

        def minimize(position, *batch):
            if not state:
                state["param"] = torch.nn.Parameter(position.detach().clone())
                state["optimizer"] = torch.optim.LBFGS(
                    [state["param"]],
                    lr=learning_rate,
                    max_iter=iterations,
                    history_size=history_size,
                    line_search_fn="strong_wolfe",
                )
            param, optimizer = state["param"], state["optimizer"]
            with torch.no_grad():
                param.copy_(position)

            def closure():
                optimizer.zero_grad()
                value, grad = grad_fn(param.detach(), *batch)
                param.grad = grad.detach().clone()
                return value

            optimizer.step(closure)
            return param.detach().clone()

        return minimize
    raise NotImplementedError(f"backend {backend!r} has no L-BFGS here")
