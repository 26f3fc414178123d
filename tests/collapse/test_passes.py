"""nc_keras.collapse.passes: measure_model over every kind of data, on every backend."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nc_keras import collapse
from nc_keras.collapse import passes

K = 3


@pytest.fixture
def problem():
    """90 samples of 8 inputs; a model whose Dropout differs between call modes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 8)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(8, K)), axis=1).astype("int32")
    inputs = keras.Input((8,))
    h = keras.layers.Dense(12, activation="relu", name="features")(
        keras.layers.Dropout(0.5)(keras.layers.Dense(16)(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(K, use_bias=False, name="classifier")(h))
    return model, x, y


def direct(model, x, y):
    """metrics() of the features of a plain inference call (not the pass's path)."""
    h = keras.Model(model.input, model.get_layer("features").output)(x, training=False)
    W = keras.ops.convert_to_numpy(model.get_layer("classifier").kernel).T
    return collapse.metrics(keras.ops.convert_to_numpy(h), y, W)


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, size):
        super().__init__()
        self.parts = [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]

    def __len__(self):
        return len(self.parts)

    def __getitem__(self, i):
        return self.parts[i]


@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_measure_model_on_every_data_kind(problem, chunk_bytes, monkeypatch):
    if chunk_bytes:  # every batch its own chunk: exercises the streaming merge
        monkeypatch.setattr(passes, "CHUNK_BYTES", chunk_bytes)
    model, x, y = problem
    expected = direct(model, x, y)
    kinds = {
        "tuple": (x, y),
        "tf.data": tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(32),
        "PyDataset": Batches(x, keras.utils.to_categorical(y, K), 32),
    }
    for kind, data in kinds.items():
        result = collapse.measure_model(model, data, batch_size=17)
        assert result["num_samples"] == 90, kind
        for key in collapse.METRIC_KEYS:
            assert result[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), kind
    first = collapse.measure_model(model, kinds["tf.data"], max_samples=50)
    assert first["num_samples"] == 50
    assert first["nc1"] == pytest.approx(direct(model, x[:50], y[:50])["nc1"], rel=1e-5)


def test_iterate_batches_stops_at_max_samples(problem):
    _, x, y = problem
    sizes = [len(yb) for _, yb in collapse.iterate_batches((x, y), 40, max_samples=85)]
    assert sizes == [40, 40, 5]
    with pytest.raises(ValueError, match="tuple of arrays"):
        next(collapse.iterate_batches(x))


def test_infinite_dataset_needs_max_samples(problem):
    model, x, y = problem
    forever = tf.data.Dataset.from_tensor_slices((x[:40], y[:40])).batch(16).repeat()
    with pytest.raises(ValueError, match="max_samples"):
        collapse.measure_model(model, forever)
    assert collapse.measure_model(model, forever, max_samples=100)["num_samples"] == 100


def test_classifier_and_features_are_found_or_named(problem):
    _, x, y = problem
    inputs = keras.Input((8,))
    h = keras.layers.Dense(6, name="hidden")(inputs)
    plain = keras.Model(inputs, keras.layers.Dense(K, name="out")(h))
    W, b = collapse.classifier_weights(plain)
    assert W.shape == (K, 6) and b.shape == (K,)
    features = keras.ops.convert_to_numpy(keras.Model(inputs, h)(x))
    expected = collapse.metrics(features, y, W, b)
    assert collapse.measure_model(plain, (x, y))["nc1"] == pytest.approx(expected["nc1"], rel=1e-6)

    two_heads = keras.Model(inputs, [keras.layers.Dense(K, name="a")(h),
                                     keras.layers.Dense(K, name="b")(h)])
    with pytest.raises(ValueError, match=r"2 outputs.*'b', 'a', 'hidden'.*classifier=NAME"):
        collapse.measure_model(two_heads, (x, y))
    conv_only = keras.Model(inputs, keras.layers.Activation("softmax")(inputs))
    with pytest.raises(ValueError, match="no layer with a \\(d, K\\) kernel"):
        collapse.measure_model(conv_only, (x, y))
    with pytest.raises(ValueError, match="no layer 'hiden'.*Close names: 'hidden'"):
        collapse.measure_model(plain, (x, y), layers=["hiden"])
    with pytest.raises(ValueError, match="width 8, but classifier 'out' takes 6"):
        collapse.measure_model(plain, (x, y), features=plain.layers[0])
    with pytest.raises(ValueError, match="no \\(d, K\\) kernel"):
        collapse.measure_model(plain, (x, y), classifier=plain.layers[0])


def test_layers_pooled_or_flattened_and_flatten_width_checked(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6, 6, 2)).astype("float32")
    y = np.arange(40) % K
    inputs = keras.Input((6, 6, 2))
    maps = keras.layers.Conv2D(3, 3, name="maps")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(maps)
    model = keras.Model(inputs, keras.layers.Dense(K)(h))
    result = collapse.measure_model(model, (x, y), layers=["maps"], batch_size=16)
    out = keras.ops.convert_to_numpy(keras.Model(inputs, maps)(x))
    eye = np.eye(K, 3)
    assert result["nc1/maps"] == pytest.approx(
        collapse.metrics(out.mean(axis=(1, 2)), y, eye)["nc1"], rel=1e-6)
    flat = collapse.measure_model(model, (x, y), layers=["maps"], pooling="flatten")
    expected = collapse.metrics(out.reshape(40, -1), y, np.eye(K, 48))
    for key in collapse.FEATURE_ONLY_KEYS:
        assert flat[collapse.layer_key(key, "maps")] == pytest.approx(expected[key], rel=1e-6)
    assert set(collapse.METRIC_KEYS) | {"num_samples"} < set(flat)
    monkeypatch.setattr(collapse.probes, "MAX_FLATTEN_WIDTH", 16)
    with pytest.raises(ValueError, match="flattened width 48 is above 16"):
        collapse.measure_model(model, (x, y), layers=["maps"], pooling="flatten")
