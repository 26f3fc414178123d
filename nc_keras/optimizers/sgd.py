"""Stochastic gradient descent exactly as `torch.optim.SGD` (the paper's Sec. 4).

Besides the coupled weight decay (`coupled_weight_decay`), Keras's own SGD
differs in its momentum: it keeps v = mu v - lr g and adds v, so the
learning rate is baked into the buffer and after a learning-rate drop the
old, larger steps keep acting. PyTorch keeps b = mu b + g and steps
theta -= lr b, so a drop takes effect at once. The paper's schedule divides
the rate by 10 every 40 epochs, which is where the two differ.
"""

import keras
from keras import ops

from nc_keras import backend
from nc_keras.optimizers.coupled_weight_decay import CoupledWeightDecay, constant


def sgd_direction(gradient, buffer, momentum, dampening=0.0, nesterov=False, first_step=None):
    """One step of `torch.optim.SGD`'s momentum rule, as a pure function.

    With gradient g and momentum buffer b (PyTorch's heavy-ball convention,
    the learning rate kept out of the buffer):

        b <- g                                     if first_step
        b <- momentum * b + (1 - dampening) * g    otherwise
        direction = g + momentum * b   if nesterov, else   direction = b

    and the caller steps x <- x - lr * direction. With `buffer` None (no
    momentum) the direction is g itself.

    Args:
        gradient, buffer: tensors of one shape and float dtype (any backend;
            flat float64 vectors in `nc_keras.ufm`); `buffer` may be None.
        momentum: a scalar tensor of that dtype (or a Python float).
        dampening: a Python float in [0, 1).
        nesterov: bool.
        first_step: None, or a boolean scalar tensor (or bool) that is true
            at step 0, where PyTorch starts the buffer at the undamped
            gradient. With no dampening and a buffer started at zero the
            ordinary rule gives the same, so None suffices there.
    Returns:
        (direction, new_buffer); new_buffer is None when `buffer` is.
    """
    if buffer is None:
        return gradient, None
    damped = gradient
    if dampening:
        damped = ops.multiply(gradient, constant(1.0 - dampening, gradient.dtype))
    new_buffer = ops.add(ops.multiply(buffer, momentum), damped)
    if first_step is not None:
        new_buffer = ops.where(first_step, gradient, new_buffer)
    if nesterov:
        return ops.add(gradient, ops.multiply(new_buffer, momentum)), new_buffer
    return new_buffer, new_buffer


@keras.saving.register_keras_serializable(package="nc_keras")
class SGD(CoupledWeightDecay):
    """Stochastic gradient descent exactly as `torch.optim.SGD`.

    For each parameter theta with gradient g, at step t = 0, 1, ...:

        g <- g + weight_decay * theta                  (coupled L2)
        b <- g                          if t == 0
        b <- momentum * b + (1 - dampening) * g        otherwise
        g <- g + momentum * b   if nesterov, else   g <- b
        theta <- theta - learning_rate * g

    Args:
        learning_rate: float, schedule or callable. Defaults to 0.01.
        momentum: float in [0, 1]. Defaults to 0.
        dampening: float in [0, 1). Defaults to 0.
        nesterov: bool. Requires momentum > 0 and dampening = 0, as in
            PyTorch. Defaults to `False`.
        weight_decay: coupled L2 coefficient (the paper: 5e-4, or 1e-4 in
            Sec. 4.2). `None` or 0 for none.
        **kwargs: other `keras.optimizers.Optimizer` arguments (`clipnorm`,
            `name`, ...). Clipping acts on the raw gradient, before the
            decay term is added, as `torch.nn.utils.clip_grad_norm_` does.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
        weight_decay=None,
        name="sgd",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        momentum, dampening = float(momentum), float(dampening)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1]; got {momentum}.")
        if not 0.0 <= dampening < 1.0:
            raise ValueError(f"dampening must be in [0, 1); got {dampening}.")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                "Nesterov momentum requires momentum > 0 and dampening = 0 "
                f"(as in torch.optim.SGD); got momentum={momentum}, "
                f"dampening={dampening}."
            )
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = bool(nesterov)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentum_buffers = []
        if self.momentum:
            self.momentum_buffers = self.add_optimizer_variables(
                variables, "momentum_buffer"
            )

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = self.coupled_gradient(gradient, variable)
        buffer = None
        if self.momentum:
            buffer = self.momentum_buffers[self.variable_index(variable)]
        direction, new_buffer = sgd_direction(
            gradient,
            buffer,
            constant(self.momentum, variable.dtype),
            self.dampening,
            self.nesterov,
            # Without dampening the zero-started buffer already gives b = g.
            first_step=ops.equal(self.iterations, 0) if self.dampening else None,
        )
        if buffer is not None:
            self.assign(buffer, new_buffer)
        self.assign_sub(variable, ops.multiply(direction, learning_rate))

    def _fused_update(self, grads, variables, learning_rate, weight_decays):
        return backend.fused_sgd_update(
            variables=variables,
            gradients=grads,
            buffers=[self.momentum_buffers[self.variable_index(v)] for v in variables]
            if self.momentum else None,
            learning_rate=learning_rate,
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            weight_decays=weight_decays,
            first_step=lambda: int(keras.ops.convert_to_numpy(self.iterations)) == 0,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "dampening": self.dampening,
                "nesterov": self.nesterov,
            }
        )
        return config
