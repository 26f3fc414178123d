import numpy as np
import pytest

import keras

from nc_keras.optimizers import Adam, adam_direction


def _torch_adam_by_hand(steps, weight_decay, amsgrad=False, b1=0.9, b2=0.999, eps=1e-8):
    theta, m, v, v_max, out = steps.theta0.copy(), 0.0, 0.0, 0.0, []
    for t, (grad, rate) in enumerate(zip(steps.grads, steps.rates), start=1):
        g = grad + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        second = v_max if amsgrad else v
        theta = theta - rate / (1 - b1**t) * m / (np.sqrt(second / (1 - b2**t)) + eps)
        out.append(theta)
    return out


@pytest.mark.parametrize("weight_decay, amsgrad", [(0.0, False), (5e-4, False), (0.3, True)])
def test_adam_follows_pytorch_rule_across_a_rate_drop(steps, weight_decay, amsgrad):
    ours = steps.run(Adam(weight_decay=weight_decay, amsgrad=amsgrad))
    steps.assert_thetas_equal(ours, _torch_adam_by_hand(steps, weight_decay, amsgrad))


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_direction_alone_on_a_flat_vector(steps, amsgrad):
    """The pure rule the optimizer and the UFM's minibatch Adam share."""
    theta, ours = steps.theta0.ravel(), []
    m = v = keras.ops.zeros(theta.shape, steps.dtype)
    v_max = keras.ops.zeros(theta.shape, steps.dtype) if amsgrad else None
    betas_eps = [keras.ops.convert_to_tensor(c, steps.dtype) for c in (0.9, 0.999, 1e-8)]
    for t, (grad, rate) in enumerate(zip(steps.grads, steps.rates), start=1):
        direction, m, v, v_max = adam_direction(
            keras.ops.convert_to_tensor(grad.ravel(), steps.dtype),
            m,
            v,
            keras.ops.convert_to_tensor(t, steps.dtype),
            *betas_eps,
            max_second=v_max,
        )
        theta = theta - rate * keras.ops.convert_to_numpy(direction)
        ours.append((theta.reshape(steps.theta0.shape), None))
    steps.assert_thetas_equal(ours, _torch_adam_by_hand(steps, 0.0, amsgrad))


def test_adam_against_torch_optim_itself(steps):
    torch = pytest.importorskip("torch")
    expected = steps.run_torch(
        lambda p: torch.optim.Adam([p], lr=0.1, weight_decay=0.05, amsgrad=True)
    )
    steps.assert_thetas_equal(steps.run(Adam(weight_decay=0.05, amsgrad=True)), expected)


def test_adam_bad_arguments():
    with pytest.raises(ValueError, match="beta_2 must be in"):
        Adam(beta_2=1.0)
