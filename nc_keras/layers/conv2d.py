"""`keras.layers.Conv2D` with PyTorch's symmetric padding, fused on torch."""

import keras
from keras import ops

from nc_keras import backend


@keras.saving.register_keras_serializable(package="nc_keras")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` with PyTorch's symmetric padding and no layout copies.

    Same arguments, weights (kernel shape `(kh, kw, in, out)`) and outputs
    as `keras.layers.Conv2D`, plus one more kind of `padding`: an integer p
    puts p zeros on each side of both spatial axes before a "valid"
    convolution, as PyTorch's `padding=p` does. (Keras's "same" pads only
    after the input at stride 2, so a torchvision ResNet needs p = k // 2
    there.)

    On the torch backend, an undilated, ungrouped channels-last convolution
    goes through `nc_keras.backend.fused_conv2d`, which hands torch a
    permuted view (and the padding) instead of a separate padding op and the
    two full layout copies Keras makes per call; everything else, and every
    other backend, is Keras's own `convolution_op` (after `keras.ops.pad`
    for an integer padding).
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", **kwargs):
        self.symmetric_padding = None
        if isinstance(padding, int) and not isinstance(padding, bool):
            if padding < 0:
                raise ValueError(f"An integer padding must be >= 0; got {padding}.")
            self.symmetric_padding, padding = padding, "valid"
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        if self.symmetric_padding and self.data_format != "channels_last":
            raise ValueError("An integer padding is supported for data_format='channels_last' only.")

    def convolution_op(self, inputs, kernel):
        if self.data_format == "channels_last" and self.groups == 1 and set(self.dilation_rate) == {1}:
            padding = self.symmetric_padding or self.padding
            outputs = backend.fused_conv2d(inputs, kernel, self.strides, padding)
            if outputs is not None:
                return outputs
        p = self.symmetric_padding
        if not p:
            return super().convolution_op(inputs, kernel)
        if set(self.strides) == {1} and all(size == 2 * p + 1 for size in self.kernel_size):
            padding = "same"  # the same zeros, without a padded copy
        else:
            inputs, padding = ops.pad(inputs, [(0, 0), (p, p), (p, p), (0, 0)]), "valid"
        return ops.conv(
            inputs, kernel, strides=list(self.strides), padding=padding,
            dilation_rate=self.dilation_rate, data_format=self.data_format,
        )  # fmt: skip

    def compute_output_shape(self, input_shape):
        if self.symmetric_padding:
            input_shape = list(input_shape)
            for axis in (1, 2):
                if input_shape[axis] is not None:
                    input_shape[axis] += 2 * self.symmetric_padding
        return super().compute_output_shape(tuple(input_shape))

    def get_config(self):
        config = super().get_config()
        if self.symmetric_padding:
            config["padding"] = self.symmetric_padding
        return config
