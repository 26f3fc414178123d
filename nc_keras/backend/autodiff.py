"""Gradients and Hessian-vector products of a scalar function, per backend.

Both differentiate with respect to the first argument only, a flat vector
(see `nc_keras.backend.flat`), and pass the other arguments through.
"""

from nc_keras.backend.core import name


def value_and_grad(function):
    """For a scalar `function(x, *rest)`, a function returning (value, d/dx).

    Only the first argument is differentiated; the others (labels, batch
    indices) are passed through.
    """
    backend = name()
    if backend == "jax":
        import jax

        return jax.value_and_grad(function)
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_value_and_grad(x, *rest):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = function(x, *rest)
            return value, tape.gradient(value, x)

        return tf_value_and_grad
    if backend == "torch":
        import torch

        def torch_value_and_grad(x, *rest):
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                value = function(x, *rest)
                (grad,) = torch.autograd.grad(value, x)
            return value.detach(), grad

        return torch_value_and_grad
    raise NotImplementedError(f"backend {backend!r} is not supported")


def hessian_vector_product(function):
    """For a scalar `function(x, *rest)`, a function (x, v, *rest) -> H(x) v.

    Forward-over-reverse on JAX (one jvp of the gradient), double backward on
    TensorFlow and torch. The Hessian itself is never formed.
    """
    backend = name()
    if backend == "jax":
        import jax

        gradient = jax.grad(function)

        def jax_hvp(x, v, *rest):
            return jax.jvp(lambda y: gradient(y, *rest), (x,), (v,))[1]

        return jax_hvp
    if backend == "tensorflow":
        import tensorflow as tf

        def tf_hvp(x, v, *rest):
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    value = function(x, *rest)
                gradient = inner.gradient(value, x)
                directional = tf.reduce_sum(gradient * v)
            return outer.gradient(directional, x)

        return tf_hvp
    if backend == "torch":
        import torch

        def torch_hvp(x, v, *rest):
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                (gradient,) = torch.autograd.grad(function(x, *rest), x, create_graph=True)
                (product,) = torch.autograd.grad(gradient, x, grad_outputs=v)
            return product.detach()

        return torch_hvp
    raise NotImplementedError(f"backend {backend!r} is not supported")
