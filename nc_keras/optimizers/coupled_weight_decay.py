"""PyTorch's coupled weight decay, shared by `SGD` and `Adam`.

PyTorch's `weight_decay` is coupled L2, the gradient of the lambda/2
||theta||^2 of eq. (2) (Zhu et al. 2021) added to the loss:
g <- g + wd * theta, *before* the momentum or moment updates. Keras's
`weight_decay` is decoupled instead (AdamW-style: theta -= lr * wd * theta
after the step), which changes the training dynamics.

Which parameters are decayed is explicit: by default all trainable
parameters (BatchNorm's gamma and beta included, as the paper's
`model.parameters()`); exclude some with Keras's own
`optimizer.exclude_from_weight_decay(var_list=..., var_names=...)` before
the first step.
"""

from keras import ops

from nc_keras.backend.internals import OptimizerHooks


def constant(value, dtype):
    """A Python float as a tensor of `dtype`, at full precision."""
    # `ops.cast(python_float, "float64")` goes through float32 on TensorFlow
    # (0.999 -> 0.99900001); converting directly keeps full precision.
    return ops.convert_to_tensor(value, dtype=dtype)


class CoupledWeightDecay(OptimizerHooks):
    """Base of `SGD` and `Adam`: `weight_decay` is added to the gradient.

    Subclasses implement `update_step`, starting from `coupled_gradient`
    (g + weight_decay * theta), and may implement `_fused_update` to apply
    the same update to all variables at once with a backend's list kernels.
    """

    def decoupled_weight_decay(self, variables):
        # Keras applies `weight_decay` here, decoupled from the gradient;
        # these optimizers add it to the gradient in `update_step` instead.
        return

    def update_all(self, grads, variables, learning_rate):
        # All variables at once where the backend has list kernels (torch:
        # 4-9x faster than `update_step` variable by variable, about 2% of a
        # ResNet18 step on CPU); `update_step` elsewhere.
        decay = self.weight_decay or 0.0
        weight_decays = [decay if decay and self.decays(v) else 0.0 for v in variables]
        if not self._fused_update(grads, variables, learning_rate, weight_decays):
            self.default_update_all(grads, variables, learning_rate)

    def _fused_update(self, grads, variables, learning_rate, weight_decays):
        """Applies the update with `nc_keras.backend`'s fused kernels, if any."""
        return False

    def coupled_gradient(self, gradient, variable):
        """g + weight_decay * theta, in `variable`'s dtype (g alone if excluded)."""
        gradient = ops.cast(gradient, variable.dtype)
        if self.weight_decay and self.decays(variable):
            gradient = ops.add(
                gradient,
                ops.multiply(constant(self.weight_decay, variable.dtype), variable),
            )
        return gradient
