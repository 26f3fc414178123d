"""Adam exactly as `torch.optim.Adam`: coupled weight decay, PyTorch's epsilon."""

import keras
from keras import ops

from nc_keras import backend
from nc_keras.optimizers.coupled_weight_decay import CoupledWeightDecay, constant


def adam_direction(gradient, m, v, step, beta_1, beta_2, epsilon, max_second=None):
    """One step of `torch.optim.Adam`'s rule (Kingma & Ba), as a pure function.

    With gradient g, first and second moments m and v, at step t = 1, 2, ...:

        m <- beta_1 m + (1 - beta_1) g
        v <- beta_2 v + (1 - beta_2) g^2
        v_max <- max(v_max, v)    if `max_second` (AMSGrad; v_max replaces v below)
        direction = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)

    and the caller steps x <- x - lr * direction. Epsilon is added outside
    the bias-corrected square root, as PyTorch does.

    Args:
        gradient, m, v: tensors of one shape and float dtype (any backend;
            flat float64 vectors in `nc_keras.ufm`).
        step: t, a scalar tensor of that dtype (1 at the first step).
        beta_1, beta_2, epsilon: scalar tensors of that dtype.
        max_second: None, or AMSGrad's running maximum of v.
    Returns:
        (direction, m, v, max_second), the last None when given None.
    """
    m = ops.add(ops.multiply(m, beta_1), ops.multiply(1.0 - beta_1, gradient))
    v = ops.add(ops.multiply(v, beta_2), ops.multiply(1.0 - beta_2, ops.square(gradient)))
    second = v
    if max_second is not None:
        max_second = ops.maximum(max_second, v)
        second = max_second
    correction_1 = 1.0 - ops.power(beta_1, step)
    correction_2 = 1.0 - ops.power(beta_2, step)
    denominator = ops.add(ops.sqrt(ops.divide(second, correction_2)), epsilon)
    return ops.divide(ops.divide(m, correction_1), denominator), m, v, max_second


@keras.saving.register_keras_serializable(package="nc_keras")
class Adam(CoupledWeightDecay):
    """Adam exactly as `torch.optim.Adam` (coupled L2, PyTorch's epsilon).

    For each parameter theta with gradient g, at step t = 1, 2, ...:

        g <- g + weight_decay * theta                  (coupled L2)
        m <- beta_1 m + (1 - beta_1) g
        v <- beta_2 v + (1 - beta_2) g^2
        v_max <- max(v_max, v)     if amsgrad (then v_max replaces v below)
        theta <- theta - lr / (1 - beta_1^t) * m / (sqrt(v / (1 - beta_2^t)) + epsilon)

    Keras's Adam adds epsilon to sqrt(v) before the bias correction, which
    is a different (larger) epsilon; this one matches PyTorch.

    Args:
        learning_rate: float, schedule or callable. Defaults to 1e-3.
        beta_1, beta_2: moment decay rates. Default 0.9 and 0.999.
        epsilon: Defaults to 1e-8 (PyTorch's default).
        amsgrad: bool. Defaults to `False`.
        weight_decay: coupled L2 coefficient. `None` or 0 for none.
        **kwargs: other `keras.optimizers.Optimizer` arguments.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        amsgrad=False,
        weight_decay=None,
        name="adam",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        for label, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{label} must be in [0, 1); got {beta}.")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0; got {epsilon}.")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.first_moments = self.add_optimizer_variables(variables, "first_moment")
        self.second_moments = self.add_optimizer_variables(variables, "second_moment")
        self.max_second_moments = []
        if self.amsgrad:
            self.max_second_moments = self.add_optimizer_variables(
                variables, "max_second_moment"
            )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = self.coupled_gradient(gradient, variable)
        index = self.variable_index(variable)
        m, v = self.first_moments[index], self.second_moments[index]
        v_max = self.max_second_moments[index] if self.amsgrad else None
        direction, new_m, new_v, new_v_max = adam_direction(
            gradient,
            m,
            v,
            ops.cast(self.iterations + 1, dtype),
            constant(self.beta_1, dtype),
            constant(self.beta_2, dtype),
            constant(self.epsilon, dtype),
            max_second=v_max,
        )
        self.assign(m, new_m)
        self.assign(v, new_v)
        if v_max is not None:
            self.assign(v_max, new_v_max)
        self.assign_sub(variable, ops.multiply(learning_rate, direction))

    def _fused_update(self, grads, variables, learning_rate, weight_decays):
        indices = [self.variable_index(v) for v in variables]
        return backend.fused_adam_update(
            variables=variables,
            gradients=grads,
            first_moments=[self.first_moments[i] for i in indices],
            second_moments=[self.second_moments[i] for i in indices],
            max_second_moments=[self.max_second_moments[i] for i in indices] if self.amsgrad else None,
            learning_rate=learning_rate,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            weight_decays=weight_decays,
            step=self.iterations + 1,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config
