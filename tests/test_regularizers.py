import numpy as np
import pytest

import keras

from nc_keras.regularizers import HalfL2


def test_half_l2_is_half_of_keras_l2():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    ours = float(keras.ops.convert_to_numpy(HalfL2(l2=0.2)(x)))
    keras_l2 = float(keras.ops.convert_to_numpy(keras.regularizers.L2(l2=0.2)(x)))
    np.testing.assert_allclose(ours, 0.1 * np.sum(x**2), rtol=1e-6)
    np.testing.assert_allclose(ours, keras_l2 / 2, rtol=1e-6)
    assert HalfL2(l2=0.2).get_config() == {"l2": 0.2}
    assert HalfL2.from_config(HalfL2(0.2).get_config()).l2 == 0.2


def test_half_l2_former_name_l_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"HalfL2\(l=\) is deprecated.*use l2="):
        old = HalfL2(l=0.3)
    assert old.l2 == 0.3
    with pytest.warns(DeprecationWarning, match=r"HalfL2\.l is deprecated.*HalfL2\.l2"):
        assert old.l == 0.3
    # A config saved with the former key loads too.
    with pytest.warns(DeprecationWarning):
        assert HalfL2.from_config({"l": 0.25}).l2 == 0.25
    with pytest.raises(TypeError, match="both l= .* and l2="):
        HalfL2(l=0.1, l2=0.2)


@pytest.mark.parametrize("wrong", [-0.1, float("nan"), "0.1"])
def test_half_l2_refuses_a_bad_coefficient(wrong):
    with pytest.raises(ValueError, match="l2 must be"):
        HalfL2(l2=wrong)
