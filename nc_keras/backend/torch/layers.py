"""Fused torch kernels behind `nc_keras.layers.Conv2D` and `BatchNormalization`.

Keras's torch backend composes these layers from several generic ops, each
a full pass (or copy) over the activations; here torch's own kernels do the
work. Each function returns `None` on the other backends (their compilers
fuse Keras's composition themselves), so the layer falls back to Keras.
"""

import keras

from nc_keras.backend.core import name


def fused_conv2d(inputs, kernel, strides, padding):
    """A channels-last 2-D convolution without layout copies, or `None`.

    Keras's torch backend copies each input to a contiguous NCHW tensor and
    then back to channels-last memory for oneDNN (two full copies per conv,
    and more in the backward pass): about 10% of a ResNet18 step on CPU. An
    NHWC tensor viewed as NCHW (a permute, no copy) is already in torch's
    channels-last memory format, so torch's convolution takes it directly.

    `padding` is `"valid"`, `"same"` (stride 1 only, as torch has no
    asymmetric "same") or an integer p (p zeros on each side, inside the
    convolution rather than as a padded copy). Returns `None` where there is
    nothing to gain (the other backends compile their own layout) so that
    the caller falls back to `keras.ops.conv`.
    """
    if name() != "torch" or (padding == "same" and tuple(strides) != (1, 1)):
        return None
    import torch.nn.functional as F

    outputs = F.conv2d(
        keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2),
        keras.ops.convert_to_tensor(kernel).permute(3, 2, 0, 1),
        stride=tuple(strides),
        padding={"valid": 0}.get(padding, padding),
    )
    return outputs.permute(0, 2, 3, 1)


def fused_batch_norm(inputs, gamma, beta, moving_mean, moving_variance, epsilon, training):
    """Batch normalization over all axes but the last, in one kernel, or `None`.

    Returns `(outputs, batch_mean, batch_variance)`; in inference
    (`training=False`) the batch statistics are the moving ones. The batch
    variance is the biased one, as Keras uses (torch's running variance is
    unbiased, so it is rescaled by (n - 1) / n here). The caller updates the
    moving statistics.

    Keras's torch backend composes batch norm from about ten element-wise
    ops (mean, E[x^2] - mean^2, subtract, multiply, ...), each a pass over
    the activations forward and backward: about 15% of a ResNet18 step on
    CPU. torch's native kernel makes one pass for the statistics and one for
    the normalization, and computes the variance by Welford's method
    (more accurate than E[x^2] - mean^2). Returns `None` on the other
    backends, whose compilers fuse Keras's composition themselves.
    """
    if name() != "torch":
        return None
    import torch.nn.functional as F

    x = keras.ops.convert_to_tensor(inputs)
    channels = x.shape[-1]
    as_channels_first = x.movedim(-1, 1)  # a view; channels-last memory for 4-D x
    gamma = None if gamma is None else keras.ops.convert_to_tensor(gamma)
    beta = None if beta is None else keras.ops.convert_to_tensor(beta)
    if not training:
        mean = keras.ops.convert_to_tensor(moving_mean)
        variance = keras.ops.convert_to_tensor(moving_variance)
        outputs = F.batch_norm(as_channels_first, mean, variance, gamma, beta, training=False, eps=epsilon)
        return outputs.movedim(1, -1), mean, variance
    # With momentum 1 the "running" buffers receive exactly the batch statistics.
    mean, variance = x.new_zeros(channels), x.new_zeros(channels)
    outputs = F.batch_norm(
        as_channels_first, mean, variance, gamma, beta, training=True, momentum=1.0, eps=epsilon
    )
    count = x.numel() // channels
    return outputs.movedim(1, -1), mean, variance * ((count - 1) / count)
