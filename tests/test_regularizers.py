import numpy as np

import keras

from nc_keras.regularizers import HalfL2


def test_half_l2_is_half_of_keras_l2():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    ours = float(keras.ops.convert_to_numpy(HalfL2(0.2)(x)))
    keras_l2 = float(keras.ops.convert_to_numpy(keras.regularizers.L2(0.2)(x)))
    np.testing.assert_allclose(ours, 0.1 * np.sum(x**2), rtol=1e-6)
    np.testing.assert_allclose(ours, keras_l2 / 2, rtol=1e-6)
    assert HalfL2.from_config(HalfL2(0.2).get_config()).l == 0.2
