import numpy as np
import pytest

import keras

from nc_keras import backend
from nc_keras.layers import BatchNormalization, Conv2D, FeatureDecay, SimplexETF, simplex_etf
from nc_keras.regularizers import HalfL2


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
    [(1, 4, "at least 2 classes"), (10, 8, "feature_dim >= num_classes - 1 = 9")],
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


def test_feature_decay_adds_half_lambda_mean_squared_norm_in_training_only():
    layer = FeatureDecay(0.3)
    h = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, -1.0]], "float32")
    out = layer(h, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), h)
    expected = 0.5 * 0.3 * np.mean(np.sum(h**2, axis=1))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.losses[0])), expected, rtol=1e-6)
    quiet = FeatureDecay(0.3)
    quiet(h, training=False)
    assert quiet.losses == []
    with pytest.raises(ValueError, match="lambda_h must be >= 0"):
        FeatureDecay(-1.0)


def test_half_l2_is_half_of_keras_l2():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    ours = float(keras.ops.convert_to_numpy(HalfL2(0.2)(x)))
    keras_l2 = float(keras.ops.convert_to_numpy(keras.regularizers.L2(0.2)(x)))
    np.testing.assert_allclose(ours, 0.1 * np.sum(x**2), rtol=1e-6)
    np.testing.assert_allclose(ours, keras_l2 / 2, rtol=1e-6)
    assert HalfL2.from_config(HalfL2(0.2).get_config()).l == 0.2


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.mark.parametrize(
    "kernel_size, strides, padding",
    [(3, 1, 1), (3, 2, 1), (7, 2, 3), (1, 2, 0), (3, 1, 2), (3, 1, "same"), (3, 2, "valid"), (3, 2, "same"),
     (2, 1, "same"), (4, 1, "same")],
)
def test_conv2d_equals_keras_conv_on_the_padded_input(kernel_size, strides, padding):
    x = np.random.default_rng(0).standard_normal((3, 9, 8, 4)).astype("float32")
    ours = Conv2D(5, kernel_size, strides=strides, padding=padding, bias_initializer="ones")
    outputs = _numpy(ours(x))
    p = padding if isinstance(padding, int) else 0
    keras_padding = padding if isinstance(padding, str) else "valid"
    reference = keras.layers.Conv2D(5, kernel_size, strides=strides, padding=keras_padding)
    padded = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    reference.build(padded.shape)
    reference.set_weights(ours.get_weights())
    expected = _numpy(reference(padded))
    assert outputs.shape == expected.shape == ours.compute_output_shape(x.shape)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    clone = Conv2D.from_config(ours.get_config())
    assert clone.symmetric_padding == (padding if isinstance(padding, int) and padding else None)
    assert clone.compute_output_shape(x.shape) == expected.shape


def test_conv2d_rejects_negative_padding():
    with pytest.raises(ValueError, match="must be >= 0"):
        Conv2D(4, 3, padding=-1)


def _conv_bn_model(conv, batch_norm, inputs):
    x = conv(6, 3, strides=2, padding=1, use_bias=False, name="conv")(inputs)
    x = batch_norm(momentum=0.9, epsilon=1e-5, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, name="hidden")(x)
    x = batch_norm(momentum=0.8, epsilon=1e-3, name="bn1d")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x))


def test_fused_layers_train_like_keras_layers():
    """The same weights after SGD steps: outputs, gradients and moving statistics agree."""
    rng = np.random.default_rng(0)
    x = (1.5 + 2.0 * rng.standard_normal((16, 10, 10, 3))).astype("float32")
    y = rng.integers(0, 3, 16)

    def keras_conv(filters, size, strides, padding, **kwargs):
        def apply(tensor):
            tensor = keras.layers.ZeroPadding2D(padding)(tensor)
            return keras.layers.Conv2D(filters, size, strides=strides, **kwargs)(tensor)

        return apply

    keras.utils.set_random_seed(0)
    ours = _conv_bn_model(Conv2D, BatchNormalization, keras.Input((10, 10, 3)))
    theirs = _conv_bn_model(keras_conv, keras.layers.BatchNormalization, keras.Input((10, 10, 3)))
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for layer in ("conv", "bn", "hidden", "bn1d", "classifier"):
        for a, b in zip(ours.get_layer(layer).weights, theirs.get_layer(layer).weights):
            np.testing.assert_allclose(_numpy(a), _numpy(b), rtol=1e-4, atol=1e-5, err_msg=f"{layer}/{a.name}")
    moving_mean = _numpy(ours.get_layer("bn").moving_mean)
    assert np.abs(moving_mean).max() > 1e-2  # the statistics did move
    np.testing.assert_allclose(
        _numpy(ours.predict(x, verbose=0)), _numpy(theirs.predict(x, verbose=0)), rtol=1e-4, atol=1e-5
    )


def test_batch_norm_uses_the_fused_kernel_on_torch_only_and_falls_back_for_masks():
    x = np.random.default_rng(1).standard_normal((4, 5, 3)).astype("float32")
    gamma, beta = np.ones(3, "float32"), np.zeros(3, "float32")
    fused = backend.fused_batch_norm(x, gamma, beta, np.zeros(3, "float32"), np.ones(3, "float32"), 1e-5, True)
    assert (fused is not None) == (keras.backend.backend() == "torch")
    mask = np.array([[1, 1, 1, 0, 0]] * 4, dtype=bool)
    ours, reference = BatchNormalization(), keras.layers.BatchNormalization()
    np.testing.assert_allclose(
        _numpy(ours(x, training=True, mask=mask)), _numpy(reference(x, training=True, mask=mask)), atol=1e-6
    )
    np.testing.assert_allclose(_numpy(ours.moving_variance), _numpy(reference.moving_variance), atol=1e-7)


def test_resnet_with_fused_layers_survives_keras_file_round_trip(tmp_path):
    from nc_keras import models

    model = models.resnet18(num_classes=3, input_shape=(16, 16, 3), stem="cifar")
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    x = np.random.default_rng(2).standard_normal((2, 16, 16, 3)).astype("float32")
    path = tmp_path / "resnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("layer2_0_conv1"), Conv2D)
    assert loaded.get_layer("layer2_0_conv1").symmetric_padding == 1
    assert isinstance(loaded.get_layer("bn1"), BatchNormalization)
    np.testing.assert_array_equal(_numpy(loaded.predict(x, verbose=0)), _numpy(model.predict(x, verbose=0)))
