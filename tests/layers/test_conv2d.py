import numpy as np
import pytest

import keras

from nc_keras.layers import Conv2D


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
