import numpy as np
import pytest

import keras

from nc_keras import backend

SHAPES = [(2, 3), (3, 4), (2,)]


def _arrays():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape) for shape in SHAPES]


def test_numpy_round_trip_is_row_major_and_stays_numpy():
    arrays = _arrays()
    vector = backend.pack(arrays)
    assert isinstance(vector, np.ndarray) and vector.shape == (20,)
    np.testing.assert_array_equal(vector, np.concatenate([a.ravel() for a in arrays]))
    pieces = backend.unpack(vector, SHAPES)
    assert all(isinstance(piece, np.ndarray) for piece in pieces)
    for piece, array in zip(pieces, arrays):
        np.testing.assert_array_equal(piece, array)


def test_tensor_round_trip():
    arrays = _arrays()
    vector = backend.pack([keras.ops.convert_to_tensor(a, "float32") for a in arrays])
    assert not isinstance(vector, np.ndarray)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(vector), backend.pack(arrays), rtol=1e-6)
    for piece, array in zip(backend.unpack(vector, SHAPES), arrays):
        assert tuple(piece.shape) == array.shape
        np.testing.assert_allclose(keras.ops.convert_to_numpy(piece), array, rtol=1e-6)


def test_unpack_inside_a_compiled_gradient():
    # f(x) = sum_i c_i ||X_i||^2 over the pieces X_i of x: grad = 2 c_i X_i.
    scales = (1.0, 2.0, 3.0)

    def objective(x):
        return sum(c * keras.ops.sum(keras.ops.square(p)) for c, p in zip(scales, backend.unpack(x, SHAPES)))

    arrays = _arrays()
    with backend.float64():
        value_and_grad = backend.compile(backend.value_and_grad(objective))
        value, grad = value_and_grad(backend.to_tensor(backend.pack(arrays)))
        value, grad = float(backend.to_numpy(value)), backend.to_numpy(grad)
    np.testing.assert_allclose(value, sum(c * np.sum(a**2) for c, a in zip(scales, arrays)), rtol=1e-6)
    np.testing.assert_allclose(grad, backend.pack([2 * c * a for c, a in zip(scales, arrays)]), rtol=1e-6)


def test_shapes_must_cover_the_vector():
    with pytest.raises(ValueError, match="hold 18 entries; the vector has 20"):
        backend.unpack(np.zeros(20), [(2, 3), (3, 4)])
