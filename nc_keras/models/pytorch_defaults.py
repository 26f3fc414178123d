"""Convolution and batch normalization with PyTorch's defaults.

The paper's networks are PyTorch's (torchvision's); these two builders give
the Keras layers the same padding, initializers and batch-norm constants,
so that the models train and count parameters as the paper's do.
"""

import keras

from nc_keras.layers import BatchNormalization, Conv2D

# PyTorch's BatchNorm2d: momentum 0.1 on the new statistic, eps 1e-5.
_BN = dict(momentum=0.9, epsilon=1e-5)
# torchvision's ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu").
_CONV_INIT = dict(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def conv(filters, kernel_size, strides, name):
    """A bias-free convolution padded as PyTorch pads it (k // 2 each side)."""

    def apply(x):
        return Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=kernel_size // 2,
            use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(**_CONV_INIT),
            name=name,
        )(x)

    return apply


def batch_norm(name):
    """Batch normalization with PyTorch's momentum and epsilon."""
    return BatchNormalization(name=name, **_BN)
