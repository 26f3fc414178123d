"""NeuralCollapse on a language model: token-level keys in History, absent
classes skipped, padding ignored."""

import keras
import numpy as np
import pytest

from nc_keras import collapse
from nc_keras.callbacks import NeuralCollapse, log_keys

K, T, D = 9, 6, 8


def test_language_model_logs_token_level_collapse_every_epoch():
    rng = np.random.default_rng(0)
    x = rng.integers(1, K - 2, size=(48, T)).astype("int32")  # classes 0, K-2, K-1 never occur
    y = np.roll(x, -1, axis=1)
    y[:, -1] = 0  # token 0 pads: ignored, as the loss ignores it
    tokens = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(K, D)(tokens)
    h = keras.layers.Dense(D, activation="tanh", name="features")(h)
    model = keras.Model(tokens, keras.layers.Dense(K, name="classifier")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0))
    callback = NeuralCollapse((x, y), ignore_class=0, absent_classes="skip",
                              layers=["features"], ncc="exact")
    history = model.fit(x, y, epochs=2, batch_size=16, callbacks=[callback], verbose=0)
    assert set(log_keys(layers=["features"], present=True)) <= set(history.history)
    assert history.history["num_classes_present"] == [K - 3, K - 3]
    kept = y.reshape(-1) != 0
    features = keras.Model(tokens, model.get_layer("features").output)
    h = keras.ops.convert_to_numpy(features(x, training=False)).reshape(-1, D)[kept]
    W = keras.ops.convert_to_numpy(model.get_layer("classifier").kernel).T
    b = keras.ops.convert_to_numpy(model.get_layer("classifier").bias)
    expected = collapse.metrics(h, y.reshape(-1)[kept], W, b, absent_classes="skip")
    for key in ("nc1", "cdnv", "nc3", "accuracy", "ncc_mismatch", "gnc2"):
        logged = history.history["nc_accuracy" if key == "accuracy" else key][-1]
        assert logged == pytest.approx(expected[key], rel=1e-5), key
    assert history.history["nc1/features"][-1] == pytest.approx(expected["nc1"], rel=1e-5)
    with pytest.raises(ValueError, match="absent_classes must be one of"):
        NeuralCollapse((x, y), absent_classes="ignore")
