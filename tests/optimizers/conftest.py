"""What the optimizer tests share: three gradient steps across a rate drop."""

import numpy as np
import pytest

import keras


def _float64_available():
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


class Steps:
    """Applies `grads` with `rates` (the third after a drop by 10) to `theta0`.

    JAX computes in float32 unless x64 is enabled: results are compared at
    that precision (`dtype`, `rtol`). Keras keeps the learning rate in a
    float32 variable, so even in float64 the updates carry its rounding (0.1
    is 0.1 + 1.5e-9 in float32).
    """

    theta0 = np.array([[0.5, -1.0], [2.0, 0.25]])
    grads = [np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([[-0.5, 0.1], [0.2, 0.05]]),
             np.array([[0.3, -0.2], [0.1, -0.4]])]  # fmt: skip
    rates = [0.1, 0.1, 0.01]
    dtype, rtol = ("float64", 5e-8) if _float64_available() else ("float32", 2e-6)

    def run(self, optimizer, exclude=False):
        """theta and a second variable ("excluded" from decay if `exclude`) after each step."""
        theta = keras.Variable(self.theta0.copy(), dtype=self.dtype, name="theta")
        other = keras.Variable(self.theta0.copy(), dtype=self.dtype, name="excluded")
        if exclude:
            optimizer.exclude_from_weight_decay(var_names=["excluded"])
        history = []
        for grad, rate in zip(self.grads, self.rates):
            optimizer.learning_rate = rate
            optimizer.apply([keras.ops.convert_to_tensor(grad, self.dtype)] * 2, [theta, other])
            history.append(
                (keras.ops.convert_to_numpy(theta).copy(), keras.ops.convert_to_numpy(other).copy())
            )
        return history

    def run_torch(self, make):
        """theta after each step of the `torch.optim` optimizer `make([param])`."""
        import torch

        param = torch.nn.Parameter(torch.tensor(self.theta0.copy(), dtype=torch.float64))
        reference = make(param)
        history = []
        for grad, rate in zip(self.grads, self.rates):
            for group in reference.param_groups:
                group["lr"] = rate
            param.grad = torch.tensor(grad, dtype=torch.float64)
            reference.step()
            history.append(param.detach().numpy().copy())
        return history

    def assert_thetas_equal(self, ours, expected):
        for (theta, _), reference in zip(ours, expected):
            np.testing.assert_allclose(theta, reference, rtol=self.rtol, atol=self.rtol)


@pytest.fixture
def steps():
    return Steps()
