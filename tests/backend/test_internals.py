"""One test per private Keras, TFP or JAX name nc_keras uses (nc_keras.backend.internals).

A Keras, TFP or JAX upgrade that moves one of them fails here, by name.
"""

import json

import keras
import numpy as np
import pytest

from nc_keras.backend import internals


def functional():
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))


def test_functional_graph():
    model = functional()
    assert internals.functional_graph(model) is model
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    graph = internals.functional_graph(sequential)
    assert graph is not None and graph is not sequential
    assert graph.layers[-1] is sequential.layers[-1]

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert internals.functional_graph(Subclassed()) is None


def test_run_through_graph_calls_every_operation_through_the_wrapper():
    model = functional()
    called = []

    def wrap(operation):
        def call(*args, **kwargs):
            called.append(operation.name)
            return operation(*args, **kwargs)

        return call

    x = np.arange(8, dtype="float32").reshape(2, 4)
    out = internals.run_through_graph(model, [keras.ops.convert_to_tensor(x)], wrap)
    assert called == ["hidden", "out"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-6)


def test_flatten_layers_opens_nested_models():
    inner = functional()
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.Dense(1, name="top")(inner(inputs)))
    names = {layer.name for layer in internals.flatten_layers(outer)}
    assert {"hidden", "out", "top", inner.name} <= names


def test_backup_metadata_file_and_initial_epoch(tmp_path):
    model = functional()
    model.compile("sgd", "mse")
    x, y = np.ones((8, 4), "float32"), np.ones((8, 2), "float32")
    assert internals.initial_epoch(model) == 0
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    # BackupAndRestore writes the 0-based epoch a rerun starts at into this
    # file (nc_keras.train.resume reads it) ...
    saved = json.loads((tmp_path / internals.BACKUP_METADATA_FILE).read_text())
    assert saved["epoch"] == 2
    # ... and its weights into this one (nc_keras.train.resume checks it whole).
    copy = functional()
    copy.compile("sgd", "mse")
    copy.fit(x, y, epochs=1, verbose=0)
    copy.load_weights(tmp_path / internals.BACKUP_WEIGHTS_FILE)
    np.testing.assert_array_equal(copy.predict(x, verbose=0), model.predict(x, verbose=0))
    # ... and a new fit restoring from it resumes after them.
    restored = functional()
    restored.compile("sgd", "mse")
    epochs = []
    restored.fit(x, y, epochs=3, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))])
    assert internals.initial_epoch(restored) == 2 and epochs == [2]


def test_callback_lists_holding():
    found = []

    class Probe(keras.callbacks.Callback):
        def set_model(self, model):
            super().set_model(model)
            found.append(internals.callback_lists_holding(self))

    model = functional()
    probe = Probe()
    made = keras.callbacks.CallbackList([probe], model=model)
    assert found == [[made]]
    vars(made)  # a materialised instance __dict__ is searched through too
    assert internals.callback_lists_holding(probe) == [made]
    del made
    found.clear()  # nothing holds the first list any more
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), epochs=1, verbose=0, callbacks=[probe])
    (fitted,) = found[-1]
    assert isinstance(fitted, keras.callbacks.CallbackList) and probe in fitted.callbacks
    assert isinstance(fitted.callbacks[-1], keras.callbacks.History)  # fit's own list
    del fitted
    found.clear()
    probe.set_model(model)  # a custom loop: no list
    assert found == [[]]


def test_optimizer_hooks():
    calls = []

    class Recording(internals.OptimizerHooks):
        def build(self, variables):
            super().build(variables)
            self.indices = [self.variable_index(v) for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            variable.assign_sub(gradient * learning_rate)

        def decoupled_weight_decay(self, variables):
            calls.append(("decay", len(variables), [self.decays(v) for v in variables]))

        def update_all(self, grads, variables, learning_rate):
            calls.append(("update", len(variables)))
            self.default_update_all(grads, variables, learning_rate)

    kept, excluded = keras.Variable(np.ones(2)), keras.Variable(np.ones(3), name="bias")
    optimizer = Recording(learning_rate=0.5, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.apply_gradients([(np.ones(2), kept), (np.ones(3), excluded)])
    assert ("update", 2) in calls
    assert ("decay", 2, [True, False]) in calls
    assert optimizer.indices == [0, 1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kept), [0.5, 0.5])


def test_tfp_lbfgs_initial_state():
    import tensorflow as tf
    from tensorflow_probability.python.optimizer import lbfgs

    def value_and_grad(x):
        return tf.reduce_sum(x**2), 2 * x

    x0 = tf.constant([1.0, -2.0], tf.float64)
    state = internals.tfp_lbfgs_initial_state(lbfgs, value_and_grad, x0, 5, 1e-8)
    assert float(state.objective_value) == 5.0
    np.testing.assert_array_equal(state.position.numpy(), [1.0, -2.0])
    result = lbfgs.minimize(value_and_grad, initial_position=None, previous_optimizer_results=state,
                            num_correction_pairs=5, tolerance=1e-8)
    np.testing.assert_allclose(result.position.numpy(), [0.0, 0.0], atol=1e-8)


def test_jax_pytype_aval_mappings():
    pytest.importorskip("jax")
    mappings = internals.jax_pytype_aval_mappings()
    assert np.ndarray in mappings
