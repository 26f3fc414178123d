"""The one place for backend-specific code.

Everything else in nc_keras is written in `keras.ops` and reaches the active
backend (``keras.backend.backend()``) only through the small functions here:
compiling a function, differentiating it, Hessian-vector products, float64,
full-batch L-BFGS, data-parallel replication, and the fused torch kernels
behind `nc_keras.layers.Conv2D`, `nc_keras.layers.BatchNormalization` and
the optimizers' updates. The differentiation and L-BFGS functions work on a
*flat* float64 parameter vector so that the unconstrained feature model
(`nc_keras.ufm`) and network training (which can flatten its trainable
weights) share them.

L-BFGS per backend:

* tensorflow: `tfp.optimizer.lbfgs_minimize`, compiled with `tf.function`;
* jax: the same algorithm from tfp's JAX substrate, under `jax.jit`. The
  substrate needs two work-arounds, applied by `_tfp_jax()`: on jax >= 0.7,
  `jax.interpreters.xla.pytype_aval_mappings` no longer exists and must be
  re-pointed at `jax._src.core.pytype_aval_mappings`; and the substrate
  try-imports TensorFlow (only to copy docstrings), which would load all of
  TensorFlow into a JAX process, so that import is refused while it loads;
* torch: `torch.optim.LBFGS` with the strong Wolfe line search (tfp uses
  Hager-Zhang's approximate-Wolfe search).

All three use the same history (number of correction pairs) and stop when the
largest gradient entry is at most `tolerance` or after `max_iterations`.
"""

import contextlib
import dataclasses
import os
import sys

import keras
import numpy as np


def name():
    return keras.backend.backend()


@contextlib.contextmanager
def float64():
    """Context in which the backend computes in float64.

    TensorFlow and torch honour float64 tensors as given; JAX silently
    truncates them to float32 unless x64 is enabled, so it is enabled here for
    the duration of the block only (other code in the process keeps its
    defaults). Compiled JAX functions must be both traced and called inside.
    """
    if name() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def to_tensor(array, dtype="float64"):
    return keras.ops.convert_to_tensor(np.asarray(array), dtype=dtype)


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def compile(function, xla_on_tensorflow=False):  # noqa: A001 - by design
    """`function` compiled for the active backend (torch runs it eagerly).

    JAX always compiles with XLA; TensorFlow builds a graph, and with
    `xla_on_tensorflow` also compiles it with XLA (worth it for long loops
    such as L-BFGS: 2.5x faster here, but slower to trace). torch.compile is
    left out on purpose: its warm-up costs seconds, far more than the small
    problems here save.
    """
    backend = name()
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True, jit_compile=xla_on_tensorflow)
    return function


def value_and_grad(function):
    """For a scalar `function(x, *rest)`, a function returning (value, d/dx).

    Only the first argument is differentiated; the others (labels, batch
    indices) are passed through.
    """
    backend = name()
    if backend == "jax":
        import jax

        return jax.value_and_grad(function)
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_value_and_grad(x, *rest):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = function(x, *rest)
            return value, tape.gradient(value, x)

        return tf_value_and_grad
    if backend == "torch":
        import torch

        def torch_value_and_grad(x, *rest):
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                value = function(x, *rest)
                (grad,) = torch.autograd.grad(value, x)
            return value.detach(), grad

        return torch_value_and_grad
    raise NotImplementedError(f"backend {backend!r} is not supported")


def hessian_vector_product(function):
    """For a scalar `function(x, *rest)`, a function (x, v, *rest) -> H(x) v.

    Forward-over-reverse on JAX (one jvp of the gradient), double backward on
    TensorFlow and torch. The Hessian itself is never formed.
    """
    backend = name()
    if backend == "jax":
        import jax

        gradient = jax.grad(function)

        def jax_hvp(x, v, *rest):
            return jax.jvp(lambda y: gradient(y, *rest), (x,), (v,))[1]

        return jax_hvp
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_hvp(x, v, *rest):
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    value = function(x, *rest)
                gradient = inner.gradient(value, x)
                directional = tf.reduce_sum(gradient * v)
            return outer.gradient(directional, x)

        return tf_hvp
    if backend == "torch":
        import torch

        def torch_hvp(x, v, *rest):
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                (gradient,) = torch.autograd.grad(function(x, *rest), x, create_graph=True)
                (product,) = torch.autograd.grad(gradient, x, grad_outputs=v)
            return product.detach()

        return torch_hvp
    raise NotImplementedError(f"backend {backend!r} is not supported")


def fused_conv2d(inputs, kernel, strides, padding):
    """A channels-last 2-D convolution without layout copies, or `None`.

    Keras's torch backend copies each input to a contiguous NCHW tensor and
    then back to channels-last memory for oneDNN (two full copies per conv,
    and more in the backward pass): about 10% of a ResNet18 step on CPU. An
    NHWC tensor viewed as NCHW (a permute, no copy) is already in torch's
    channels-last memory format, so torch's convolution takes it directly.

    `padding` is `"valid"`, `"same"` (stride 1 only, as torch has no
    asymmetric "same") or an integer p (p zeros on each side, inside the
    convolution rather than as a padded copy). Returns `None` where there is
    nothing to gain (the other backends compile their own layout) so that
    the caller falls back to `keras.ops.conv`.
    """
    if name() != "torch" or (padding == "same" and tuple(strides) != (1, 1)):
        return None
    import torch.nn.functional as F

    outputs = F.conv2d(
        keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2),
        keras.ops.convert_to_tensor(kernel).permute(3, 2, 0, 1),
        stride=tuple(strides),
        padding={"valid": 0}.get(padding, padding),
    )
    return outputs.permute(0, 2, 3, 1)


def fused_batch_norm(inputs, gamma, beta, moving_mean, moving_variance, epsilon, training):
    """Batch normalization over all axes but the last, in one kernel, or `None`.

    Returns `(outputs, batch_mean, batch_variance)`; in inference
    (`training=False`) the batch statistics are the moving ones. The batch
    variance is the biased one, as Keras uses (torch's running variance is
    unbiased, so it is rescaled by (n - 1) / n here). The caller updates the
    moving statistics.

    Keras's torch backend composes batch norm from about ten element-wise
    ops (mean, E[x^2] - mean^2, subtract, multiply, ...), each a pass over
    the activations forward and backward: about 15% of a ResNet18 step on
    CPU. torch's native kernel makes one pass for the statistics and one for
    the normalization, and computes the variance by Welford's method
    (more accurate than E[x^2] - mean^2). Returns `None` on the other
    backends, whose compilers fuse Keras's composition themselves.
    """
    if name() != "torch":
        return None
    import torch.nn.functional as F

    x = keras.ops.convert_to_tensor(inputs)
    channels = x.shape[-1]
    as_channels_first = x.movedim(-1, 1)  # a view; channels-last memory for 4-D x
    gamma = None if gamma is None else keras.ops.convert_to_tensor(gamma)
    beta = None if beta is None else keras.ops.convert_to_tensor(beta)
    if not training:
        mean = keras.ops.convert_to_tensor(moving_mean)
        variance = keras.ops.convert_to_tensor(moving_variance)
        outputs = F.batch_norm(as_channels_first, mean, variance, gamma, beta, training=False, eps=epsilon)
        return outputs.movedim(1, -1), mean, variance
    # With momentum 1 the "running" buffers receive exactly the batch statistics.
    mean, variance = x.new_zeros(channels), x.new_zeros(channels)
    outputs = F.batch_norm(
        as_channels_first, mean, variance, gamma, beta, training=True, momentum=1.0, eps=epsilon
    )
    count = x.numel() // channels
    return outputs.movedim(1, -1), mean, variance * ((count - 1) / count)



def _coupled_steps(variables, gradients, weight_decays):
    """torch tensors of `variables` and their gradients plus coupled decay."""
    params = [v.value for v in variables]
    steps = [g.to(p.dtype) for g, p in zip(gradients, params)]
    for i, decay in enumerate(weight_decays):
        if decay:
            steps[i] = steps[i].add(params[i], alpha=decay)
    return params, steps


def fused_sgd_update(
    variables, gradients, buffers, learning_rate, momentum, dampening, nesterov, weight_decays, first_step
):
    """`torch.optim.SGD`'s update of all `variables` with torch's list kernels.

    The update of `nc_keras.optimizers.SGD.update_step` (coupled decay
    `weight_decays[i]` per variable, momentum `buffers`, dampening,
    Nesterov), done with `torch._foreach_*` ops over the whole list instead
    of about eight small ops per variable. `first_step()` says whether this
    is step 0 (asked only with dampening, where PyTorch starts the buffer at
    the undamped gradient). Returns `False` on the other backends (their
    compilers fuse the per-variable updates), `True` once applied.
    """
    if name() != "torch":
        return False
    import torch

    with torch.no_grad():
        params, steps = _coupled_steps(variables, gradients, weight_decays)
        if momentum:
            buffers = [b.value for b in buffers]
            if dampening and first_step():
                torch._foreach_copy_(buffers, steps)
            else:
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, steps, alpha=1.0 - dampening)
            steps = torch._foreach_add(steps, buffers, alpha=momentum) if nesterov else buffers
        rate = keras.ops.convert_to_tensor(learning_rate, dtype=params[0].dtype)
        torch._foreach_sub_(params, torch._foreach_mul(steps, rate))
    return True


def fused_adam_update(
    variables, gradients, first_moments, second_moments, max_second_moments,
    learning_rate, beta_1, beta_2, epsilon, weight_decays, step,
):  # fmt: skip
    """`torch.optim.Adam`'s update of all `variables` with torch's list kernels.

    The update of `nc_keras.optimizers.Adam.update_step` at step `step`
    (1, 2, ...; a tensor, so that no value leaves the device): coupled
    decay, moments, AMSGrad's running maximum when `max_second_moments` is
    given, and PyTorch's epsilon outside the bias-corrected square root.
    Returns `False` on the other backends, `True` once applied.
    """
    if name() != "torch":
        return False
    import torch

    with torch.no_grad():
        params, steps = _coupled_steps(variables, gradients, weight_decays)
        m = [t.value for t in first_moments]
        v = [t.value for t in second_moments]
        torch._foreach_lerp_(m, steps, 1.0 - beta_1)
        torch._foreach_mul_(v, beta_2)
        torch._foreach_addcmul_(v, steps, steps, value=1.0 - beta_2)
        second = v
        if max_second_moments is not None:
            second = [t.value for t in max_second_moments]
            torch._foreach_maximum_(second, v)
        dtype = params[0].dtype
        step = keras.ops.convert_to_tensor(step).to(dtype)
        correction_1 = 1.0 - torch.pow(beta_1, step)
        correction_2 = 1.0 - torch.pow(beta_2, step)
        denominators = torch._foreach_sqrt(torch._foreach_mul(second, 1.0 / correction_2))
        torch._foreach_add_(denominators, epsilon)
        rate = keras.ops.convert_to_tensor(learning_rate, dtype=dtype) / correction_1
        torch._foreach_sub_(params, torch._foreach_mul(torch._foreach_div(m, denominators), rate))
    return True


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
    import jax
    import jax.interpreters.xla as xla

    if not hasattr(xla, "pytype_aval_mappings"):
        xla.pytype_aval_mappings = jax._src.core.pytype_aval_mappings

    class _RefuseTensorFlow:
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "tensorflow":
                raise ModuleNotFoundError("tensorflow is not loaded on the JAX backend")

    blocker = None
    if "tensorflow" not in sys.modules:
        blocker = _RefuseTensorFlow()
        sys.meta_path.insert(0, blocker)
    try:
        from tensorflow_probability.substrates.jax import optimizer
    finally:
        if blocker is not None:
            sys.meta_path.remove(blocker)
    return optimizer


# Compiled tfp L-BFGS loops, one per (objective, history, tolerance): a
# landscape of many starts on one problem compiles once.
_TFP_LOOPS = {}


def _lbfgs_tfp(value_and_grad_fn, x0, max_iterations, tolerance, history, callback, every):
    if name() == "jax":
        optimizer = _tfp_jax()
        from tensorflow_probability.substrates.jax.optimizer import lbfgs as lbfgs_module
    else:
        import tensorflow_probability as tfp
        from tensorflow_probability.python.optimizer import lbfgs as lbfgs_module

        optimizer = tfp.optimizer
    key = (name(), value_and_grad_fn, history, tolerance)
    if key not in _TFP_LOOPS:

        def resume(previous, limit):
            return optimizer.lbfgs_minimize(
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
    result = lbfgs_module._get_initial_state(value_and_grad_fn, x0, history, tolerance)
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
        if backend == "jax":
            optimizer = _tfp_jax()
        else:
            import tensorflow_probability as tfp

            optimizer = tfp.optimizer

        def minimize(position, *batch):
            result = optimizer.lbfgs_minimize(
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


# ---------------------------------------------------------------------------
# Data parallelism: several devices, processes and hosts.

STRATEGIES = ("auto", "none", "data_parallel")

# Environment variables that configure a multi-process JAX run; they are read
# by `keras.distribution.initialize` itself.
_KERAS_MULTI_PROCESS_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES")


@dataclasses.dataclass
class Replication:
    """Where a run's model replicas live (from `replicate`).

    Attributes:
        scope: context manager in which to build, compile and fit the model.
        replicas: model replicas over all processes (devices per process
            times processes); 1 for a plain single-device run.
        process_index: this process's rank, 0 on the chief.
        process_count: number of processes (hosts) taking part.
    """

    scope: object
    replicas: int = 1
    process_index: int = 0
    process_count: int = 1


def check_replication(strategy, devices):
    """Raises a ValueError for an unknown `strategy` or a `devices` below 1."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    if devices is not None and int(devices) < 1:
        raise ValueError(f"devices must be a positive integer or None; got {devices}.")


def replicate(strategy="auto", devices=None, coordinator=None, num_processes=None, process_id=None):
    """Selects the backend's data-parallel engine; returns a `Replication`.

    * jax: `keras.distribution.DataParallel` over the first `devices` local
      devices of every process. A multi-process run (one process per host,
      or per GPU) is set up first by `keras.distribution.initialize`, which
      calls `jax.distributed.initialize`, when `coordinator` ("host:port" of
      process 0) or the `KERAS_DISTRIBUTION_JOB_ADDRESSES` environment
      variable is given; this must happen before any JAX computation.
    * tensorflow: `tf.distribute.MirroredStrategy` over the first `devices`
      local GPUs (or logical CPU devices when there is no GPU). With
      `TF_CONFIG` set, a `ValueError`: Keras 3's `fit` fails under
      `MultiWorkerMirroredStrategy` (see `_tf_replicate`).
    * torch: Keras has no data-parallel `fit` for torch: a `ValueError`
      points to the other backends.

    Args:
        strategy: "auto" (data parallel when `devices` > 1 or a multi-process
            run is configured, else none), "none" (one device) or
            "data_parallel" (`devices` defaults to every local device).
        devices: local devices per process; None: one, or all of them with
            "data_parallel" or in a multi-process run.
        coordinator, num_processes, process_id: multi-process JAX only.
    """
    check_replication(strategy, devices)
    multi_process = _multi_process_requested(coordinator)
    if (num_processes is not None or process_id is not None) and not multi_process:
        raise ValueError(
            "num_processes and process_id describe a multi-process JAX run: give "
            "coordinator (host:port of process 0) too."
        )
    if strategy == "none":
        if (devices or 1) > 1 or multi_process:
            raise ValueError(
                "strategy 'none' trains on one device in one process; use strategy "
                "'data_parallel' (or 'auto') for several devices or processes."
            )
        return Replication(contextlib.nullcontext())
    if strategy == "auto" and (devices or 1) == 1 and not multi_process:
        return Replication(contextlib.nullcontext())
    backend = name()
    if backend == "jax":
        return _jax_replicate(devices, coordinator, num_processes, process_id)
    if backend == "tensorflow" and coordinator:
        raise ValueError(
            "coordinator, num_processes and process_id are JAX options; TensorFlow "
            "reads its cluster from the TF_CONFIG environment variable."
        )
    if backend == "tensorflow":
        return _tf_replicate(devices)
    raise ValueError(
        f"data-parallel training (devices={devices}, strategy={strategy!r}) is not "
        f"available on the {backend} backend: Keras 3 has no multi-device `fit` "
        "for torch. Run with KERAS_BACKEND=jax (keras.distribution.DataParallel) or "
        "KERAS_BACKEND=tensorflow (tf.distribute.MirroredStrategy); the saved "
        ".keras models load on torch. Or train on one device: devices=None."
    )



def process_index():
    """This process's rank in a multi-process run; 0 when there is one process.

    Only JAX runs several processes here (`replicate`); its rank is known
    once `jax.distributed` has started, i.e. after `replicate`.
    """
    if name() == "jax":
        import jax

        return jax.process_index()
    return 0

def _multi_process_requested(coordinator):
    if coordinator:
        return True
    if name() == "tensorflow":
        return bool(os.environ.get("TF_CONFIG"))
    if name() == "jax":
        import jax

        return jax.distributed.is_initialized() or any(
            os.environ.get(variable) for variable in _KERAS_MULTI_PROCESS_ENV
        )
    return False


def _jax_replicate(devices, coordinator, num_processes, process_id):
    import jax

    if _multi_process_requested(coordinator) and not jax.distributed.is_initialized():
        try:
            keras.distribution.initialize(coordinator, num_processes, process_id)
        except RuntimeError as error:
            raise ValueError(
                "a multi-process JAX run must be set up before any JAX computation: "
                f"call train() (or keras.distribution.initialize) first ({error})."
            ) from error
    available = len(jax.local_devices())
    count = available if devices is None else int(devices)
    if count > available:
        raise ValueError(
            f"devices={count}, but JAX sees {available} local device(s) "
            f"({jax.local_devices()}); on CPU, XLA_FLAGS="
            f"--xla_force_host_platform_device_count={count} makes more."
        )
    # The first `count` local devices of every process, processes in order,
    # so each process feeds a contiguous share of every global batch.
    per_process = {}
    for device in jax.devices():
        per_process.setdefault(device.process_index, []).append(device)
    chosen = [device for rank in sorted(per_process) for device in per_process[rank][:count]]
    distribution = keras.distribution.DataParallel(devices=chosen)
    return Replication(
        distribution.scope(), len(chosen), jax.process_index(), jax.process_count()
    )


def _tf_replicate(devices):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        # Tried on two localhost workers: Keras 3.15's `fit` builds the model
        # with `strategy.reduce` over the whole (x, y) batch, which
        # MultiWorkerMirroredStrategy rejects ("Attempt to convert a value
        # (PerReplica...) to a Tensor"), so fail early and say so.
        raise ValueError(
            "TF_CONFIG is set, but Keras 3's model.fit cannot train under "
            "tf.distribute.MultiWorkerMirroredStrategy (its first step calls "
            "strategy.reduce on the (x, y) batch, which that strategy rejects). For "
            "several hosts use KERAS_BACKEND=jax with --coordinator; on one host, "
            "unset TF_CONFIG and use --devices (MirroredStrategy)."
        )
    available = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    count = len(available) if devices is None else int(devices)
    if count > len(available):
        raise ValueError(
            f"devices={count}, but TensorFlow sees {len(available)} local "
            f"device(s) ({[d.name for d in available]}); CPU devices can be "
            "split with tf.config.set_logical_device_configuration."
        )
    strategy = tf.distribute.MirroredStrategy([d.name for d in available[:count]])
    return Replication(strategy.scope(), strategy.num_replicas_in_sync)


@dataclasses.dataclass
class ShardedPredictor:
    """A model's forward pass as the active distribution runs it.

    Attributes:
        predict: `predict(x)` -> numpy outputs of the rows of `x`, this
            process's share of a global batch; `len(x)` must be the same on
            every process and a multiple of `local_replicas`.
        allgather: `allgather(vector)` -> (process_count, n) float64 array
            of every process's `vector` (float64, same length everywhere), in
            process order, identical on every process.
        local_replicas, process_index, process_count: as in `Replication`.
    """

    predict: object
    allgather: object = None
    local_replicas: int = 1
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if self.allgather is None:
            self.allgather = lambda vector: np.asarray(vector, np.float64)[None]


def sharded_predictor(model, extractor):
    """How to run `extractor` (sharing `model`'s layers) data-parallel.

    With no distribution (JAX: `keras.distribution.distribution()` is None;
    TensorFlow: `model`'s strategy has one replica; torch always), the plain
    `extractor.predict_on_batch`. Otherwise every local replica runs its
    share of the batch, and `allgather` exchanges data between processes.
    """
    backend = name()
    predictor = None
    if backend == "jax":
        predictor = _jax_predictor(extractor)
    elif backend == "tensorflow":
        predictor = _tf_predictor(model, extractor)
    return predictor or ShardedPredictor(extractor.predict_on_batch)


def _jax_predictor(extractor):
    import jax

    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    mesh = distribution.device_mesh.backend_mesh
    local = sum(device.process_index == jax.process_index() for device in mesh.devices.flat)

    @jax.jit
    def forward(trainable, non_trainable, x):
        return extractor.stateless_call(trainable, non_trainable, x, training=False)[0]

    def predict(x):
        shape = keras.tree.flatten(x)[0].shape
        sharding = distribution.get_data_layout(shape).backend_layout
        # This process's rows of the global batch that its local data forms.
        spans = sharding.addressable_devices_indices_map(
            (shape[0] * jax.process_count(),) + tuple(shape[1:])
        ).values()
        start = min(index[0].start or 0 for index in spans)
        x = keras.tree.map_structure(
            lambda part: jax.make_array_from_process_local_data(sharding, part), x
        )
        outputs = forward(
            [v.value for v in extractor.trainable_variables],
            [v.value for v in extractor.non_trainable_variables],
            x,
        )
        return [_jax_process_rows(output, start, start + shape[0]) for output in outputs]

    def allgather(vector):
        from jax.experimental import multihost_utils

        # Exchanged as raw bits: without x64 mode JAX would round float64
        # statistics to float32.
        bits = np.ascontiguousarray(vector, np.float64).view(np.uint32)
        return np.asarray(multihost_utils.process_allgather(bits)).view(np.float64)

    several = jax.process_count() > 1
    return ShardedPredictor(predict, allgather if several else None, local,
                            jax.process_index(), jax.process_count())


def _jax_process_rows(array, start, stop):
    """Rows [start, stop) of a global jax.Array, read from this process's shards."""
    pieces = {}
    for shard in array.addressable_shards:
        begin, end, _ = shard.index[0].indices(array.shape[0])
        if begin < stop and end > start and begin not in pieces:  # replicas repeat
            pieces[begin] = np.asarray(shard.data)[max(start - begin, 0):min(stop, end) - begin]
    return np.concatenate([pieces[begin] for begin in sorted(pieces)])


def _tf_predictor(model, extractor):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return None
    local = len(strategy.extended.worker_devices)
    if local != strategy.num_replicas_in_sync:
        raise ValueError(
            "NC measurement under a multi-worker tf.distribute strategy is not "
            "supported (nor is Keras' fit under it); use KERAS_BACKEND=jax for several hosts."
        )

    # Not `extractor.predict_on_batch`: under a strategy it hands the whole
    # batch to every replica and concatenates the copies.
    @tf.function(reduce_retracing=True)
    def forward(x):
        return strategy.run(lambda part: extractor(part, training=False), args=(x,))

    def predict(x):
        size = len(keras.tree.flatten(x)[0]) // local
        x = strategy.experimental_distribute_values_from_function(
            lambda context: keras.tree.map_structure(
                lambda a: a[context.replica_id_in_sync_group * size:][:size], x
            )
        )
        return [
            np.concatenate([np.asarray(part) for part in strategy.experimental_local_results(output)])
            for output in forward(x)
        ]

    return ShardedPredictor(predict, local_replicas=local)
