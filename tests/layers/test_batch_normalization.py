import numpy as np

import keras

from nc_keras import backend
from nc_keras.layers import BatchNormalization, Conv2D


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


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
