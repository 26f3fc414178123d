import numpy as np
import pytest

import keras

from nc_keras.layers import FeatureDecay


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
