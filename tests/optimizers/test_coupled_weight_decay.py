import numpy as np
import pytest

import keras

from nc_keras.optimizers import SGD, Adam


def test_excluded_variables_are_not_decayed(steps):
    ours = steps.run(SGD(momentum=0.9, weight_decay=0.5), exclude=True)
    decayed = steps.run(SGD(momentum=0.9, weight_decay=0.5))
    plain = steps.run(SGD(momentum=0.9))
    for (theta, other), (with_decay, _), (without, _) in zip(ours, decayed, plain):
        np.testing.assert_allclose(theta, with_decay, rtol=steps.rtol)
        np.testing.assert_allclose(other, without, rtol=steps.rtol)
    assert not np.allclose(decayed[-1][0], plain[-1][0])


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
