"""The NeuralCollapse callback, on tiny models, on every backend."""

import csv
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from nc_keras import collapse
from nc_keras.callbacks import NeuralCollapse, load_history, log_keys

K = 3


def toy_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(8, K)), axis=1).astype("int32")
    return x, y


def mlp(classifier=None, dropout=0.0):
    """Input -> Dense -> BN -> ReLU (-> Dropout) -> Dense "features" -> classifier."""
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    h = keras.layers.Dense(12, activation="relu", name="features")(h)
    classifier = classifier or keras.layers.Dense(K, name="classifier")
    model = keras.Model(inputs, classifier(h))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def independent(model, x, y, training=False, ncc_means=None):
    """metrics() of features from a direct model call (not the callback's path)."""
    features = keras.Model(model.input, model.get_layer("features").output)
    h = keras.ops.convert_to_numpy(features(x, training=training))
    layer = model.get_layer("classifier")
    W = keras.ops.convert_to_numpy(layer.kernel).T
    b = None if layer.bias is None else keras.ops.convert_to_numpy(layer.bias)
    result = collapse.metrics(h, y, W, b)
    if ncc_means is not None:
        logits = h @ W.T + (0 if b is None else b)
        nearest = np.argmin(((h[:, None] - ncc_means[None]) ** 2).sum(-1), axis=1)
        result["ncc_mismatch"] = float(np.mean(nearest != logits.argmax(1)))
    return result


def read_csv(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    # CSVLogger writes "NA" for keys it expected but never saw.
    return {key: np.array([float(row[key].replace("NA", "nan")) for row in rows])
            for key in rows[0]}


def tensorboard_run(directory):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def read_tensorboard(directory, tag):
    events = tensorboard_run(directory).Tensors(tag)
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events}


def logged_pairs(prefix):
    """(metrics() key, log key) for the train ("") or validation ("val_") logs."""
    return [(key, prefix + ("nc_accuracy" if key == "accuracy" else key))
            for key in collapse.METRIC_KEYS
            if not (prefix and key in ("nc2", "classifier_norm_cv"))]


def test_fit_logs_to_history_csv_and_tensorboard(tmp_path):
    x, y = toy_data()
    xt, yt = toy_data(48, seed=1)
    test_ds = tf.data.Dataset.from_tensor_slices((xt, yt)).batch(20)
    model = mlp()
    nc = NeuralCollapse((x, y), test_ds, history_dir=tmp_path / "nc", batch_size=40)
    history = model.fit(
        x, y, epochs=3, batch_size=32, verbose=0,
        callbacks=[nc, keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
                   keras.callbacks.TensorBoard(str(tmp_path / "tb"))],
    ).history
    table = read_csv(tmp_path / "log.csv")
    for key in log_keys() + log_keys(validation=True):
        assert len(history[key]) == 3
        np.testing.assert_allclose(table[key], history[key], rtol=1e-12)
        assert np.all(np.isfinite(table[key])), key
    saved = load_history(tmp_path / "nc")
    np.testing.assert_array_equal(saved["epoch"], [1, 2, 3])
    np.testing.assert_allclose(saved["nc1"], history["nc1"], rtol=1e-12)

    # The last epoch's logs equal an independent measurement of the final
    # model with BatchNorm in inference mode; NCC used epoch 2's class means.
    for prefix, (xs, ys) in (("", (x, y)), ("val_", (xt, yt))):
        means = saved[(prefix or "train_") + "class_means"][1]
        expected = independent(model, xs, ys, ncc_means=means)
        for key, name in logged_pairs(prefix):
            assert history[name][-1] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), name
        h = keras.ops.convert_to_numpy(keras.Model(
            model.input, model.get_layer("features").output)(xs))
        np.testing.assert_allclose(
            saved[(prefix or "train_") + "class_means"][2],
            np.stack([h[ys == k].mean(0) for k in range(K)]), rtol=1e-5, atol=1e-6)
    training_mode = independent(model, x, y, training=True)
    assert abs(training_mode["nc1"] - history["nc1"][-1]) > 1e-4 * history["nc1"][-1]

    # TensorBoard: scalars stored as tensors, val_ keys in validation/, but
    # no W-only metric there (the same for any data).
    assert "val_nc2" not in history and "val_classifier_norm_cv" not in history
    for sub, prefix in (("train", ""), ("validation", "val_")):
        for name in ("nc1", "nc3", "nc4", "nc_accuracy", "ncc_mismatch", "cdnv", "gnc2"):
            logged = read_tensorboard(tmp_path / "tb" / sub, f"epoch_{name}")
            assert sorted(logged) == [0, 1, 2]
            np.testing.assert_allclose(
                [logged[e] for e in range(3)], table[prefix + name], rtol=1e-6)
    assert read_tensorboard(tmp_path / "tb" / "train", "epoch_nc2")
    assert "epoch_nc2" not in tensorboard_run(tmp_path / "tb" / "validation").Tags()["tensors"]


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], self.y[part]


def test_every_nan_on_skipped_epochs_with_etf_classifier(tmp_path):
    from nc_keras.layers import SimplexETF

    x, y = toy_data()
    model = mlp(SimplexETF(K, name="classifier"))
    nc = NeuralCollapse(Batches(x, y, 25), freq=3, ncc="exact")
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[
        nc, keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))]).history
    table = read_csv(tmp_path / "log.csv")
    assert set(log_keys()) <= set(table)
    # Without test data there are no val_ keys (CSVLogger pads them with NA).
    assert all(np.isnan(table[key]).all() for key in log_keys(validation=True))
    assert not set(log_keys(validation=True)) & set(history)
    for key in log_keys():
        # Measured at epoch 3 (freq=3) and at the last epoch, 4.
        assert np.isnan(table[key][:2]).all(), key
        assert np.isfinite(table[key][2:]).all(), key
    expected = independent(model, x, y)
    for key, name in logged_pairs(""):
        assert history[name][-1] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), name
    assert history["nc2"][-1] < 1e-6  # the fixed classifier is an exact ETF


def final_weights(with_callback):
    keras.utils.set_random_seed(123)
    x, y = toy_data()
    model = mlp(dropout=0.3)
    callbacks = []
    if with_callback:
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(30)
        callbacks = [NeuralCollapse(data, (x[:40], y[:40]), max_samples=70)]
    model.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=0, callbacks=callbacks)
    return model.get_weights()


def test_training_unchanged_by_callback():
    without, with_ = final_weights(False), final_weights(True)
    for a, b in zip(without, with_):
        np.testing.assert_array_equal(a, b)


def test_layers_logged_to_history_csv_and_tensorboard(tmp_path):
    x, y = toy_data()
    xt, yt = toy_data(48, seed=1)
    model = mlp()
    hidden = model.layers[3]  # the ReLU after BatchNorm
    nc = NeuralCollapse((x, y), (xt, yt), layers=[hidden, "features"],
                        history_dir=tmp_path / "nc")
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[
        nc, keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.TensorBoard(str(tmp_path / "tb"))]).history
    names = [hidden.name, "features"]
    table = read_csv(tmp_path / "log.csv")
    layer_keys = [key for key in log_keys(layers=names) if "/" in key]
    assert len(layer_keys) == 2 * len(collapse.FEATURE_ONLY_KEYS)
    for prefix, (xs, ys) in (("", (x, y)), ("val_", (xt, yt))):
        for key in layer_keys:
            np.testing.assert_allclose(table[prefix + key], history[prefix + key], rtol=1e-12)
        h = keras.ops.convert_to_numpy(keras.Model(model.input, hidden.output)(xs))
        expected = collapse.metrics(h, ys, np.eye(K, h.shape[1]))
        for key in collapse.FEATURE_ONLY_KEYS:
            assert history[prefix + collapse.layer_key(key, hidden.name)][-1] == pytest.approx(
                expected[key], rel=1e-6)
        # The classifier's input, measured as a layer, is the features themselves.
        assert history[prefix + "nc1/features"] == pytest.approx(history[prefix + "nc1"], rel=1e-9)
    np.testing.assert_array_equal(load_history(tmp_path / "nc")["layers"][-1], names)
    for sub, prefix in (("train", ""), ("validation", "val_")):
        for key in layer_keys:
            logged = read_tensorboard(tmp_path / "tb" / sub, f"epoch_{key}")
            np.testing.assert_allclose([logged[e] for e in range(2)], table[prefix + key],
                                       rtol=1e-6)


def test_loggers_before_the_callback_record_its_keys_and_pictures(tmp_path):
    # Keras hands `logs` to the callbacks in list order: loggers placed
    # before NeuralCollapse used to record none of its keys.
    x, y = toy_data()
    xt, yt = toy_data(48, seed=1)
    loggers = [keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
               keras.callbacks.TensorBoard(str(tmp_path / "tb"), write_graph=False)]
    history = mlp().fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[
        *loggers, NeuralCollapse((x, y), (xt, yt), batch_size=40)]).history
    table = read_csv(tmp_path / "log.csv")
    for key in log_keys() + log_keys(validation=True):
        np.testing.assert_allclose(table[key], history[key], rtol=1e-12)
        assert np.all(np.isfinite(table[key])), key
    for sub in ("train", "validation"):
        run = tensorboard_run(tmp_path / "tb" / sub)
        tags = run.Tags()
        assert sorted(e.step for e in run.Tensors("epoch_nc1")) == [0, 1]
        images = set(tags["images"]) | {
            tag for tag in tags["tensors"] if tag.startswith("neural_collapse/")}
        for tag in ("neural_collapse/class_mean_cosines",
                    "neural_collapse/classifier_vs_class_means",
                    "neural_collapse/class_mean_norms"):
            assert tag in images, (sub, tag)
            assert sorted(e.step for e in run.Tensors(tag)) == [0, 1], (sub, tag)
        # The classifier's norms do not depend on the data: train run only.
        assert ("neural_collapse/classifier_norms" in tags["tensors"]) == (sub == "train")
    image = tf.make_ndarray(run.Tensors("neural_collapse/class_mean_cosines")[-1].tensor_proto)
    width, height = (int(v) for v in image[:2])
    assert width > 2 * height > 100  # two panels side by side


def test_tensorboard_dir_without_a_tensorboard_callback(tmp_path):
    x, y = toy_data()
    nc = NeuralCollapse((x, y), tensorboard_dir=tmp_path / "nc_tb", batch_size=40)
    mlp().fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[nc])
    run = tensorboard_run(tmp_path / "nc_tb" / "train")
    assert "neural_collapse/classifier_vs_class_means" in run.Tags()["tensors"]
    # No TensorBoard callback writes there: the scalars are written too.
    assert read_tensorboard(tmp_path / "nc_tb" / "train", "epoch_nc1")
