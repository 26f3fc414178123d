import numpy as np
import pytest

import keras

from nc_keras.optimizers import SGD, Adam

THETA0 = np.array([[0.5, -1.0], [2.0, 0.25]])
GRADS = [np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([[-0.5, 0.1], [0.2, 0.05]]),
         np.array([[0.3, -0.2], [0.1, -0.4]])]
# Learning rates for the three steps: the third comes after a drop by 10.
RATES = [0.1, 0.1, 0.01]


def _float64_available():
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


# JAX computes in float32 unless x64 is enabled: compare at that precision.
# Keras keeps the learning rate in a float32 variable, so even in float64 the
# updates carry its rounding (0.1 is 0.1 + 1.5e-9 in float32).
DTYPE, RTOL = ("float64", 5e-8) if _float64_available() else ("float32", 2e-6)


def _run(optimizer, exclude=False):
    """Applies GRADS with RATES; returns theta after each step (in DTYPE)."""
    theta = keras.Variable(THETA0.copy(), dtype=DTYPE, name="theta")
    other = keras.Variable(THETA0.copy(), dtype=DTYPE, name="excluded")
    if exclude:
        optimizer.exclude_from_weight_decay(var_names=["excluded"])
    history = []
    for grad, rate in zip(GRADS, RATES):
        optimizer.learning_rate = rate
        optimizer.apply([keras.ops.convert_to_tensor(grad, DTYPE)] * 2, [theta, other])
        history.append(
            (keras.ops.convert_to_numpy(theta).copy(), keras.ops.convert_to_numpy(other).copy())
        )
    return history


def _torch_sgd_by_hand(momentum, weight_decay, nesterov=False, dampening=0.0):
    theta, buffer, out = THETA0.copy(), None, []
    for grad, rate in zip(GRADS, RATES):
        g = grad + weight_decay * theta
        if momentum:
            buffer = g.copy() if buffer is None else momentum * buffer + (1 - dampening) * g
            g = g + momentum * buffer if nesterov else buffer
        theta = theta - rate * g
        out.append(theta)
    return out


def _torch_adam_by_hand(weight_decay, amsgrad=False, b1=0.9, b2=0.999, eps=1e-8):
    theta, m, v, v_max, out = THETA0.copy(), 0.0, 0.0, 0.0, []
    for t, (grad, rate) in enumerate(zip(GRADS, RATES), start=1):
        g = grad + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        second = v_max if amsgrad else v
        theta = theta - rate / (1 - b1**t) * m / (np.sqrt(second / (1 - b2**t)) + eps)
        out.append(theta)
    return out


@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov, dampening",
    [(0.0, 0.0, False, 0.0), (0.9, 5e-4, False, 0.0), (0.9, 0.5, True, 0.0),
     (0.9, 0.1, False, 0.3)],
)
def test_sgd_follows_pytorch_rule_across_a_rate_drop(momentum, weight_decay, nesterov, dampening):
    ours = _run(SGD(momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                    dampening=dampening))
    expected = _torch_sgd_by_hand(momentum, weight_decay, nesterov, dampening)
    for (theta, _), reference in zip(ours, expected):
        np.testing.assert_allclose(theta, reference, rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("weight_decay, amsgrad", [(0.0, False), (5e-4, False), (0.3, True)])
def test_adam_follows_pytorch_rule_across_a_rate_drop(weight_decay, amsgrad):
    ours = _run(Adam(weight_decay=weight_decay, amsgrad=amsgrad))
    expected = _torch_adam_by_hand(weight_decay, amsgrad)
    for (theta, _), reference in zip(ours, expected):
        np.testing.assert_allclose(theta, reference, rtol=RTOL, atol=RTOL)


def test_excluded_variables_are_not_decayed():
    ours = _run(SGD(momentum=0.9, weight_decay=0.5), exclude=True)
    decayed = _torch_sgd_by_hand(0.9, 0.5)
    plain = _torch_sgd_by_hand(0.9, 0.0)
    for (theta, other), with_decay, without in zip(ours, decayed, plain):
        np.testing.assert_allclose(theta, with_decay, rtol=RTOL)
        np.testing.assert_allclose(other, without, rtol=RTOL)


def test_keras_sgd_differs_after_the_rate_drop():
    """Why these optimizers exist: Keras's momentum carries the old rate."""
    theta = keras.Variable(THETA0.copy(), dtype=DTYPE)
    keras_sgd = keras.optimizers.SGD(momentum=0.9)
    for grad, rate in zip(GRADS, RATES):
        keras_sgd.learning_rate = rate
        keras_sgd.apply([keras.ops.convert_to_tensor(grad, DTYPE)], [theta])
    torch_rule = _torch_sgd_by_hand(0.9, 0.0)[-1]
    assert np.abs(keras.ops.convert_to_numpy(theta) - torch_rule).max() > 1e-3


def test_against_torch_optim_itself():
    torch = pytest.importorskip("torch")
    for ours, make in [
        (SGD(momentum=0.9, weight_decay=0.05, nesterov=True),
         lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.05, nesterov=True)),
        (Adam(weight_decay=0.05, amsgrad=True),
         lambda p: torch.optim.Adam([p], lr=0.1, weight_decay=0.05, amsgrad=True)),
    ]:
        param = torch.nn.Parameter(torch.tensor(THETA0.copy(), dtype=torch.float64))
        reference = make(param)
        expected = []
        for grad, rate in zip(GRADS, RATES):
            for group in reference.param_groups:
                group["lr"] = rate
            param.grad = torch.tensor(grad, dtype=torch.float64)
            reference.step()
            expected.append(param.detach().numpy().copy())
        for (theta, _), value in zip(_run(ours), expected):
            np.testing.assert_allclose(theta, value, rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_optimizers_train_a_model_and_serialize(cls, tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.BatchNormalization()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=cls(learning_rate=0.01, weight_decay=5e-4), loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
    first = model.fit(x, x[:, :2], epochs=3, verbose=0).history["loss"]
    assert first[-1] < first[0]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.get_config() == model.optimizer.get_config()


def test_bad_arguments():
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match="beta_2 must be in"):
        Adam(beta_2=1.0)
