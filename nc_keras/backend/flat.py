"""One flat vector for a list of arrays, and the list back from it.

The differentiation and L-BFGS functions of `nc_keras.backend` work on a
single flat parameter vector x; the unconstrained feature model packs
(W, H, b) into x = [vec(W), vec(H), b], network training packs its
trainable weights. `pack` and `unpack` are that map and its inverse, in
row-major (C) order, the order of `numpy.ravel` and `keras.ops.reshape`.
"""

import math

import keras
import numpy as np


def pack(arrays):
    """The entries of `arrays`, one after the other, as one flat vector.

    NumPy arrays give a NumPy vector (of their common dtype); backend tensors
    give a backend tensor, so `pack` also works inside compiled and
    differentiated functions.

    Example:

    >>> pack([np.ones((2, 3)), np.zeros(2)]).shape
    (8,)
    """
    arrays = list(arrays)
    if all(isinstance(array, np.ndarray) for array in arrays):
        return np.concatenate([np.ravel(array) for array in arrays])
    return keras.ops.concatenate([keras.ops.reshape(array, (-1,)) for array in arrays])


def unpack(vector, shapes):
    """`vector` cut into consecutive pieces of `shapes`: the inverse of `pack`.

    A NumPy `vector` gives NumPy arrays (views); a backend tensor gives
    backend tensors. `shapes` must account for every entry of `vector`.
    """
    shapes = [tuple(int(size) for size in shape) for shape in shapes]
    sizes = [math.prod(shape) for shape in shapes]
    length = vector.shape[0]
    if length is not None and sum(sizes) != length:
        raise ValueError(
            f"shapes {shapes} hold {sum(sizes)} entries; the vector has {length}."
        )
    reshape = np.reshape if isinstance(vector, np.ndarray) else keras.ops.reshape
    pieces, start = [], 0
    for shape, size in zip(shapes, sizes):
        pieces.append(reshape(vector[start : start + size], shape))
        start += size
    return pieces
