"""Neural collapse of a mixed-precision model is measured in float32, from the same weights."""

import keras
import numpy as np
import pytest

from nc_keras import callbacks, collapse

KEYS = ("nc1", "nc2", "nc3", "nc4", "trace_ratio", "accuracy")


@pytest.fixture
def policy(request):
    """Sets the global dtype policy for the test; the previous one comes back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy(previous)


def _conv_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(4, name="classifier")(x)
    return keras.Model(inputs, outputs)


def _data(n=64):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 4
    # Class-dependent images, so that the features separate the classes a bit.
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32") + y[:, None, None, None] * 0.5
    return x, y


def _float32_copy(model):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = _conv_model()
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
def test_measure_model_of_a_mixed_model_equals_its_float32_copy(policy):
    model = _conv_model()
    assert model.get_layer("classifier").compute_dtype == policy.split("_")[1]
    x, y = _data()
    reference = collapse.measure_model(_float32_copy(model), (x, y), batch_size=16)
    measured = collapse.measure_model(model, (x, y), batch_size=16)
    for key in KEYS:
        np.testing.assert_allclose(measured[key], reference[key], rtol=1e-4, err_msg=key)
    # The mixed model still computes in its own dtype: nothing of it was changed.
    assert model.get_layer("classifier").compute_dtype == policy.split("_")[1]
    assert keras.ops.convert_to_numpy(model(x[:2])).dtype == np.dtype(policy.split("_")[1])


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_callback_of_a_mixed_model_logs_the_float32_metrics(policy):
    model = _conv_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    nc = callbacks.NeuralCollapse((x, y), batch_size=16, ncc="exact")
    history = model.fit(x, y, batch_size=16, epochs=2, callbacks=[nc], verbose=0, shuffle=False)
    # After fit, the weights are those of the last measurement.
    reference = collapse.measure_model(_float32_copy(model), (x, y), batch_size=16)
    for key in ("nc1", "nc2", "nc3", "nc4"):
        np.testing.assert_allclose(history.history[key][-1], reference[key], rtol=1e-4, err_msg=key)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_features_from_a_callable_warn_with_the_compute_dtype(policy):
    model = _conv_model()
    backbone = keras.Model(model.input, model.get_layer("features").output)
    x, y = _data(16)
    with pytest.warns(UserWarning, match=r"runs in the model's compute dtype bfloat16"):
        result = collapse.measure_model(model, (x, y), features=lambda batch: backbone(batch),
                                        classifier="classifier")
    assert np.isfinite(result["nc1"])
