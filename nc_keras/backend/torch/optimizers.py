"""The updates of `nc_keras.optimizers.SGD` and `Adam` with torch's list kernels.

The same rules as the optimizers' `update_step` (stated in their
docstrings), applied to all variables at once with `torch._foreach_*` ops
instead of several small ops per variable. Each function returns `False` on
the other backends (their compilers fuse the per-variable updates), so the
optimizer falls back to `update_step`, and `True` once applied.
"""

import keras

from nc_keras.backend.core import name


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
