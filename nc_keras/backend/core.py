"""The active backend and the few things every backend does differently.

Which backend runs (`name`), float64 on all three (`float64`), conversion
between NumPy and backend tensors, and compiling a function (`compile`).
"""

import contextlib

import keras
import numpy as np


def name():
    """The active Keras backend: "jax", "tensorflow" or "torch"."""
    return keras.backend.backend()


@contextlib.contextmanager
def float64():
    """Context in which the backend computes in float64.

    TensorFlow and torch honour float64 tensors as given; JAX silently
    truncates them to float32 unless x64 is enabled, so it is enabled here for
    the duration of the block only (other code in the process keeps its
    defaults). Compiled JAX functions must be both traced and called inside.
    """
    if name() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def to_tensor(array, dtype="float64"):
    """`array` (NumPy or nested lists) as a backend tensor, float64 by default."""
    return keras.ops.convert_to_tensor(np.asarray(array), dtype=dtype)


def to_numpy(tensor):
    """A backend tensor (or a NumPy array) as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def compile(function, xla_on_tensorflow=False):  # noqa: A001 - by design
    """`function` compiled for the active backend (torch runs it eagerly).

    JAX always compiles with XLA; TensorFlow builds a graph, and with
    `xla_on_tensorflow` also compiles it with XLA (worth it for long loops
    such as L-BFGS: 2.5x faster here, but slower to trace). torch.compile is
    left out on purpose: its warm-up costs seconds, far more than the small
    problems here save.
    """
    backend = name()
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, reduce_retracing=True, jit_compile=xla_on_tensorflow)
    return function
