"""Weight decay written as the paper writes it: lambda/2 ||x||^2.

`keras.regularizers.L2(l2)` adds l2 * sum(x^2), without the 1/2 of eq. (2)
and (3) of Zhu et al. 2021; `HalfL2(l2)` adds l2/2 * sum(x^2), so that its
gradient is l2 * x, the same as PyTorch's coupled weight decay.
"""

import keras
from keras import ops

from nc_keras import validation
from nc_keras.deprecation import renamed_arguments, renamed_attribute


@keras.saving.register_keras_serializable(package="nc_keras")
class HalfL2(keras.regularizers.Regularizer):
    """Adds `l2 / 2 * sum(x ** 2)` to the loss (eq. (3)'s lambda_W / 2 ||W||_F^2).

    Args:
        l2: the coefficient lambda >= 0 (named as `keras.regularizers.L2`'s).

    Example:

    ```python
    layer = keras.layers.Dense(10, kernel_regularizer=HalfL2(l2=5e-4))
    ```
    """

    # The former name of `l2`, kept for one release (DeprecationWarning).
    l = renamed_attribute("l2")  # noqa: E741

    @renamed_arguments(l="l2")
    def __init__(self, l2=0.0):
        self.l2 = validation.nonnegative(l2, "HalfL2's l2")

    def __call__(self, x):
        return 0.5 * self.l2 * ops.sum(ops.square(x))

    def get_config(self):
        return {"l2": self.l2}
