"""What the NeuralCollapse callback is given is checked before the first training batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nc_keras import collapse
from nc_keras.callbacks import NeuralCollapse

K = 3


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (np.arange(n) % K).astype("int32")


def _model():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(6, activation="relu", name="features")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(K, name="classifier")(h))
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _Batches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.count += 1


def _fit(callback, model=None):
    x, y = _data()
    batches = _Batches()
    (model or _model()).fit(x, y, batch_size=16, epochs=1, callbacks=[callback, batches], verbose=0)
    return batches


def _refused_before_training(make, match):
    batches = _Batches()
    x, y = _data()
    with pytest.raises(ValueError, match=match):
        callback = make()
        _model().fit(x, y, batch_size=16, epochs=1, callbacks=[callback, batches], verbose=0)
    assert batches.count == 0


def test_misuses_are_refused_before_the_first_batch_with_what_to_pass():
    x, y = _data()
    kinds = r"pass a tf.data.Dataset, a keras.utils.PyDataset or an \(x, y\) or \(x, y, sample_weight\) tuple of arrays"
    cases = [
        (lambda: NeuralCollapse((batch for batch in [(x, y)])),
         rf"^train_data: a generator is consumed by its first pass, and NeuralCollapse measures at every epoch end; {kinds}"),
        (lambda: NeuralCollapse((x, y), validation_data={"x": x, "y": y}),
         rf"^validation_data: got a dict; {kinds}"),
        (lambda: NeuralCollapse((x, y[:40])), r"^train_data: x has 48 samples but y has 40"),
        (lambda: NeuralCollapse((x, y + 1)),
         r"^train_data: 16 label\(s\) outside \[0, 3\), e.g. \[3\] .*the classifier 'classifier' has K = 3 outputs"),
        (lambda: NeuralCollapse((x[:, :5], y)),
         r"^train_data: the model cannot run on its first batch \(x of shape \(48, 5\)\): "
         r".*(\(None, 8\)|value 8)"),  # the expected width, as the backend words it
        (lambda: NeuralCollapse((x, y), max_samples=0), r"^max_samples must be an integer >= 1; got 0"),
        (lambda: NeuralCollapse((x, y), max_samples=2.5), r"^max_samples must be an integer; got 2.5"),
        (lambda: NeuralCollapse((x, y), freq=1.5), r"^freq must be an integer; got 1.5"),
    ]
    for make, match in cases:
        _refused_before_training(make, match)


def test_labels_of_a_dataset_are_checked_on_its_first_batch():
    x, y = _data()
    bad = tf.data.Dataset.from_tensor_slices((x, np.where(np.arange(48) == 5, 9, y))).batch(16)
    _refused_before_training(lambda: NeuralCollapse(bad, batch_size=16),
                             r"^train_data: 1 label\(s\) outside \[0, 3\), e.g. \[9\]")


def test_unbatched_dataset_is_batched_by_the_callback():
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    expected = collapse.measure_model(model, (x, y), ncc="none")
    for data in (tf.data.Dataset.from_tensor_slices((x, y)), (x, y)):
        callback = NeuralCollapse(data, batch_size=16, ncc="none")
        callback.set_model(model)
        logs = {}
        callback.on_epoch_end(0, logs)
        for key in ("nc1", "nc2", "nc3", "nc4", "nc_accuracy"):
            np.testing.assert_allclose(logs[key], expected["accuracy" if key == "nc_accuracy" else key],
                                       rtol=1e-6, err_msg=key)


def test_dict_inputs_as_numpy_arrays_work():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 4)).astype("float32"), rng.normal(size=(40, 2)).astype("float32")
    y = (np.arange(40) % K).astype("int32")
    inputs = {"a": keras.Input((4,), name="a"), "b": keras.Input((2,), name="b")}
    h = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
    h = keras.layers.Dense(5, activation="relu", name="features")(h)
    model = keras.Model(inputs, keras.layers.Dense(K, name="classifier")(h))
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = NeuralCollapse(({"a": a, "b": b}, y), batch_size=16, ncc="none")
    history = model.fit({"a": a, "b": b}, y, batch_size=16, epochs=1, callbacks=[callback], verbose=0)
    expected = collapse.measure_model(
        model, tf.data.Dataset.from_tensor_slices(({"a": a, "b": b}, y)).batch(7), ncc="none")
    np.testing.assert_allclose(history.history["nc1"][-1], expected["nc1"], rtol=1e-6)
