import numpy as np
import pytest

import keras

from nc_keras.layers import FeatureDecay, SimplexETF, simplex_etf


def _centring(k):
    return np.eye(k) - np.ones((k, k)) / k


@pytest.mark.parametrize(
    "num_classes, feature_dim, seed",
    [(2, 1, None), (3, 2, None), (10, 9, None), (10, 9, 3), (10, 10, None),
     (10, 512, None), (10, 64, 7), (100, 100, 1)],
)
def test_simplex_etf_geometry(num_classes, feature_dim, seed):
    kernel = simplex_etf(num_classes, feature_dim, rotation_seed=seed)
    assert kernel.shape == (feature_dim, num_classes)
    W = kernel.T
    k = num_classes
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(W @ W.T, k / (k - 1) * _centring(k), atol=1e-12)
    # Pairwise cosines are all -1/(K-1): maximal equiangular separation.
    off_diagonal = (W @ W.T)[~np.eye(k, dtype=bool)]
    np.testing.assert_allclose(off_diagonal, -1.0 / (k - 1), atol=1e-12)


def test_default_projection_is_first_columns_of_identity():
    kernel = simplex_etf(4, 6)
    expected = np.zeros((6, 4))
    expected[:4] = np.sqrt(4 / 3) * _centring(4)
    np.testing.assert_array_equal(kernel, expected)


def test_rotation_seed_is_deterministic_and_changes_the_frame():
    a = simplex_etf(5, 8, rotation_seed=11)
    np.testing.assert_array_equal(a, simplex_etf(5, 8, rotation_seed=11))
    assert not np.allclose(a, simplex_etf(5, 8, rotation_seed=12))
    assert not np.allclose(a, simplex_etf(5, 8))


@pytest.mark.parametrize(
    "units, dim, message",
    [(1, 4, "num_classes must be an integer >= 2"), (10, 8, "feature_dim >= num_classes - 1 = 9")],
)
def test_bad_shapes_raise_clear_errors(units, dim, message):
    with pytest.raises(ValueError, match=message):
        simplex_etf(units, dim)
    if units >= 2:
        layer = SimplexETF(units)
        with pytest.raises(ValueError, match="feature_dim >= num_classes - 1"):
            layer(keras.ops.ones((2, dim)))
    else:
        with pytest.raises(ValueError, match=">= 2"):
            SimplexETF(units)


def test_layer_kernel_is_fixed_and_bias_trainable():
    layer = SimplexETF(10)
    layer.build((None, 16))
    assert [w.name for w in layer.trainable_weights] == ["bias"]
    assert [w.name for w in layer.non_trainable_weights] == ["kernel"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.kernel), simplex_etf(10, 16), atol=1e-7
    )
    no_bias = SimplexETF(10, use_bias=False)
    no_bias.build((None, 16))
    assert no_bias.bias is None and not no_bias.trainable_weights


def test_layer_computes_inputs_times_kernel_plus_bias():
    layer = SimplexETF(4, bias_initializer=keras.initializers.Constant(0.5))
    x = np.random.default_rng(0).standard_normal((3, 5)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(y, x @ simplex_etf(4, 5) + 0.5, rtol=1e-5, atol=1e-6)


def _small_etf_model(seed=None):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    h = FeatureDecay(0.0, name="features")(h)
    outputs = SimplexETF(3, rotation_seed=seed, name="classifier")(h)
    return keras.Model(inputs, outputs)


def test_kernel_is_bit_identical_after_fit_while_bias_and_backbone_learn():
    model = _small_etf_model()
    classifier = model.get_layer("classifier")
    kernel_before = keras.ops.convert_to_numpy(classifier.kernel).copy()
    bias_before = keras.ops.convert_to_numpy(classifier.bias).copy()
    hidden_before = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel).copy()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype("float32")
    y = rng.integers(0, 3, 32)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(classifier.kernel), kernel_before)
    assert not np.allclose(keras.ops.convert_to_numpy(classifier.bias), bias_before)
    assert not np.allclose(
        keras.ops.convert_to_numpy(model.get_layer("hidden").kernel), hidden_before
    )


@pytest.mark.parametrize("seed", [None, 5])
def test_keras_file_round_trip_keeps_predictions(tmp_path, seed):
    model = _small_etf_model(seed)
    model.get_layer("classifier").bias.assign(np.array([0.1, -0.2, 0.3], "float32"))
    x = np.random.default_rng(1).standard_normal((4, 6)).astype("float32")
    path = tmp_path / "etf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("classifier"), SimplexETF)
    assert loaded.get_layer("classifier").rotation_seed == seed
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)),
        keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
    )


def test_simplex_etf_sizes_must_be_integers():
    # Old: simplex_etf(2.7, 4) built a 2-class ETF.
    for wrong in ((2.7, 4), (3, 4.5), ("3", 4)):
        with pytest.raises(ValueError, match="must be an integer"):
            simplex_etf(*wrong)
    assert simplex_etf(np.int64(3), 4).shape == (4, 3)
    assert simplex_etf(3.0, 4.0).shape == (4, 3)
