import numpy as np

import keras

from nc_keras import models


def test_mlp_counts_and_feature_dim():
    model = models.mlp(width=32, depth=3, num_classes=10, input_shape=(8, 8, 3), feature_dim=10)
    hidden = (8 * 8 * 3 * 32 + 32 + 64) + (32 * 32 + 32 + 64) + (32 * 10 + 10 + 20)
    assert models.count_trainable_params(model) == hidden + 10 * 10 + 10
    assert [type(layer).__name__ for layer in model.layers[2:5]] == [
        "Dense", "BatchNormalization", "ReLU",
    ]
    x = np.zeros((3, 8, 8, 3), "float32")
    assert tuple(model.predict(x, verbose=0).shape) == (3, 10)


def test_feature_penalty_and_classifier_decay_reach_the_loss():
    model = models.mlp(
        width=8, depth=1, num_classes=3, input_shape=(2, 2, 1),
        lambda_w=0.1, lambda_h=0.2, lambda_b=0.3,
    )
    x = np.random.default_rng(0).standard_normal((5, 2, 2, 1)).astype("float32")
    model(x, training=True)
    head = model.get_layer("classifier")
    W = keras.ops.convert_to_numpy(head.kernel)
    b = keras.ops.convert_to_numpy(head.bias)
    h = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("features").output)(x, training=True)
    )
    expected = 0.05 * np.sum(W**2) + 0.15 * np.sum(b**2) + 0.1 * np.mean(np.sum(h**2, 1))
    total = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_etf_classifier_with_d_equal_k_minus_one():
    model = models.mlp(width=8, depth=1, num_classes=5, input_shape=(4,4,1), feature_dim=4, classifier="etf")
    W = keras.ops.convert_to_numpy(model.get_layer("classifier").kernel).T
    np.testing.assert_allclose(W @ W.T, 5 / 4 * (np.eye(5) - 1 / 5), atol=1e-6)
