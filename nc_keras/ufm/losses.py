r"""The per-sample losses the UFM objective (eq. (3)) can average.

A loss is a function `loss(logits, targets) -> (N,)` on column-major blocks:
logits Z = W H + b 1^T and one-hot targets Y, both (K, N), one column per
sample. `LOSSES` maps each name to its function, so a new loss is one
function and one entry here; `nc_keras.ufm.theory.penalized_objective` adds the
weight decay of eq. (3) to whichever loss it is given.

Every loss computes with `keras.ops.einsum`/`sum`/`logsumexp`, which keep
float64 on every backend (`ops.matmul` on torch and `ops.mean` on JAX drop to
float32 under Keras's type promotion).
"""

import keras

__all__ = ["LOSSES", "cross_entropy", "get"]


def cross_entropy(logits, targets):
    """CE(z, y) = log sum_j exp(z_j) - <y, z> per column: the loss of eq. (3)."""
    ops = keras.ops
    return ops.logsumexp(logits, axis=0) - ops.sum(targets * logits, axis=0)


LOSSES = {"cross_entropy": cross_entropy}


def get(loss):
    """The loss function for a name in `LOSSES` (a callable is returned as is)."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[loss]
