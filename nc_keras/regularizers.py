"""Weight decay written as the paper writes it: lambda/2 ||x||^2.

`keras.regularizers.L2(l)` adds l * sum(x^2), without the 1/2 of eq. (2)
and (3) of Zhu et al. 2021; `HalfL2(l)` adds l/2 * sum(x^2), so that its
gradient is l * x, the same as PyTorch's coupled weight decay.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nc_keras")
class HalfL2(keras.regularizers.Regularizer):
    """Adds `l / 2 * sum(x ** 2)` to the loss (eq. (3)'s lambda_W / 2 ||W||_F^2).

    Args:
        l: the coefficient lambda >= 0.
    """

    def __init__(self, l=0.0):
        l = float(l)
        if not l >= 0:
            raise ValueError(f"HalfL2 needs a coefficient l >= 0; got {l}.")
        self.l = l

    def __call__(self, x):
        return 0.5 * self.l * ops.sum(ops.square(x))

    def get_config(self):
        return {"l": self.l}
