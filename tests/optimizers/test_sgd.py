import numpy as np
import pytest

import keras

from nc_keras.optimizers import SGD, sgd_direction


def _torch_sgd_by_hand(steps, momentum, weight_decay, nesterov=False, dampening=0.0):
    theta, buffer, out = steps.theta0.copy(), None, []
    for grad, rate in zip(steps.grads, steps.rates):
        g = grad + weight_decay * theta
        if momentum:
            buffer = g.copy() if buffer is None else momentum * buffer + (1 - dampening) * g
            g = g + momentum * buffer if nesterov else buffer
        theta = theta - rate * g
        out.append(theta)
    return out


@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov, dampening",
    [(0.0, 0.0, False, 0.0), (0.9, 5e-4, False, 0.0), (0.9, 0.5, True, 0.0),
     (0.9, 0.1, False, 0.3)],
)
def test_sgd_follows_pytorch_rule_across_a_rate_drop(steps, momentum, weight_decay, nesterov, dampening):
    ours = steps.run(SGD(momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                         dampening=dampening))
    steps.assert_thetas_equal(ours, _torch_sgd_by_hand(steps, momentum, weight_decay, nesterov, dampening))


@pytest.mark.parametrize(
    "momentum, nesterov, dampening", [(0.0, False, 0.0), (0.9, True, 0.0), (0.9, False, 0.3)]
)
def test_sgd_direction_alone_on_a_flat_vector(steps, momentum, nesterov, dampening):
    """The pure rule the optimizer and the UFM's minibatch SGD share."""
    theta, ours = steps.theta0.ravel(), []
    buffer = keras.ops.zeros(theta.shape, steps.dtype) if momentum else None
    for t, (grad, rate) in enumerate(zip(steps.grads, steps.rates)):
        direction, buffer = sgd_direction(
            keras.ops.convert_to_tensor(grad.ravel(), steps.dtype),
            buffer,
            keras.ops.convert_to_tensor(momentum, steps.dtype),
            dampening,
            nesterov,
            first_step=t == 0,
        )
        theta = theta - rate * keras.ops.convert_to_numpy(direction)
        ours.append((theta.reshape(steps.theta0.shape), None))
    steps.assert_thetas_equal(ours, _torch_sgd_by_hand(steps, momentum, 0.0, nesterov, dampening))


def test_keras_sgd_differs_after_the_rate_drop(steps):
    """Why this optimizer exists: Keras's momentum carries the old rate."""
    theta = keras.Variable(steps.theta0.copy(), dtype=steps.dtype)
    keras_sgd = keras.optimizers.SGD(momentum=0.9)
    for grad, rate in zip(steps.grads, steps.rates):
        keras_sgd.learning_rate = rate
        keras_sgd.apply([keras.ops.convert_to_tensor(grad, steps.dtype)], [theta])
    torch_rule = _torch_sgd_by_hand(steps, 0.9, 0.0)[-1]
    assert np.abs(keras.ops.convert_to_numpy(theta) - torch_rule).max() > 1e-3


def test_sgd_against_torch_optim_itself(steps):
    torch = pytest.importorskip("torch")
    expected = steps.run_torch(
        lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.05, nesterov=True)
    )
    steps.assert_thetas_equal(steps.run(SGD(momentum=0.9, weight_decay=0.05, nesterov=True)), expected)


def test_sgd_bad_arguments():
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        SGD(nesterov=True)
