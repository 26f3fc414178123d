"""Mini-batch L-BFGS training, the paper's third optimizer (Sec. 4.1, Fig. 3).

L-BFGS is no `keras.optimizers.Optimizer`: it minimizes a function of one
flat weight vector, evaluating it many times per step (line search). So
`fit_lbfgs` drives the training loop itself, minimizing each batch's
objective over the flattened trainable weights, and makes the calls of
`model.fit` on the callbacks (progress bar, NeuralCollapse, CSV log,
TensorBoard, BackupAndRestore), so a run logs and resumes as any other.
"""

import contextlib
import itertools

import keras

from nc_keras import backend
from nc_keras.backend import internals


def fit_lbfgs(
    model,
    train_data,
    epochs,
    callbacks=(),
    weight_decay=None,
    history_size=10,
    iterations_per_batch=20,
    learning_rate=0.1,
    verbose="auto",
    steps_per_epoch=None,
    loss=None,
):
    """Mini-batch L-BFGS training with Keras callbacks (Sec. 4.1, Fig. 3).

    Each batch of `train_data` (the paper: 2048 samples) gets up to
    `iterations_per_batch` L-BFGS iterations, with a line search, on the
    batch objective

        mean loss + the model's penalties + weight_decay/2 ||theta||^2

    over all trainable weights theta (the paper's coupled L2, written into
    the objective since L-BFGS has no gradient hook). Inside the objective
    BatchNorm uses batch statistics; its moving statistics are then set to
    the batch's statistics at the batch's final weights, by one
    training-mode forward pass with momentum 0 (which also gives the logged
    `loss` and `accuracy`). PyTorch's L-BFGS updates them at each of the
    about 20 evaluations of a batch, at weights moving towards the final
    ones, so it keeps only 0.9^20 = 12% of older statistics; keeping even
    that much of the previous batch's breaks eval-mode predictions once
    weight decay has shrunk the weights (docs/evidence/nc_optimizers_cpu).
    The loss is `loss` (a Keras loss of integer labels and logits, e.g.
    from `nc_keras.train.losses.build_loss`), cross-entropy by default.

    What each backend runs is in `nc_keras.backend.lbfgs_batch_minimizer`:
    on torch, `torch.optim.LBFGS` with the strong Wolfe line search and its
    history kept across batches, exactly the paper's method; on TensorFlow
    and JAX, tensorflow-probability's L-BFGS with a fresh history per batch
    and the Hager-Zhang line search (tfp has no strong Wolfe search).

    Callbacks receive the calls of `model.fit` (History, progress bar,
    `NeuralCollapse`, `EpochCSVLogger`, `TensorBoard`, `BackupAndRestore`
    for resuming, `TerminateOnNaN`: a callback that sets
    `model.stop_training` ends the epoch at that batch).

    `steps_per_epoch`, as in `model.fit`: when given, `train_data` is one
    stream of all epochs' batches (`nc_keras.data.load(epochs=...)`), read
    `steps_per_epoch` batches per epoch; else every epoch is one pass over
    `train_data`.

    Returns:
        The `keras.callbacks.History` of the run.
    """
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    objective, unflatten = _flat_objective(model, weight_decay, loss)
    minimize = backend.lbfgs_batch_minimizer(
        objective, history_size=history_size, iterations=iterations_per_batch,
        learning_rate=learning_rate,
    )  # fmt: skip
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0,
        verbose=1 if verbose == "auto" else verbose, epochs=epochs,
        steps=steps_per_epoch or _cardinality(train_data), model=model,
    )  # fmt: skip
    model.stop_training = False
    if not hasattr(model, "optimizer"):
        # Callbacks (TensorBoard, BackupAndRestore) look for one.
        model.optimizer = None
    callback_list.on_train_begin()
    epoch_logs = {}
    stream = iter(train_data) if steps_per_epoch else None
    # Where BackupAndRestore restored a run, it resumes.
    for epoch in range(internals.initial_epoch(model), epochs):
        callback_list.on_epoch_begin(epoch)
        position = _flat_weights(model)
        loss_sum = correct = seen = 0.0
        for step, (x, y) in enumerate(_epoch_batches(train_data, stream, steps_per_epoch)):
            callback_list.on_train_batch_begin(step)
            x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y, "int32")
            non_trainable = [v.value for v in model.non_trainable_variables]
            position = minimize(position, x, y, non_trainable)
            for variable, value in zip(model.trainable_variables, unflatten(position)):
                variable.assign(value)
            with _batch_statistics(model):
                logits = model(x, training=True)
            batch_loss = float(keras.ops.convert_to_numpy(
                loss(y, logits) + _penalty(model, position, weight_decay)
            ))  # fmt: skip
            batch_correct = float(keras.ops.convert_to_numpy(
                keras.ops.sum(keras.ops.cast(keras.ops.argmax(logits, -1) == y, "float32"))
            ))  # fmt: skip
            size = int(keras.ops.shape(y)[0])
            loss_sum, correct, seen = loss_sum + batch_loss * size, correct + batch_correct, seen + size
            callback_list.on_train_batch_end(
                step, {"loss": batch_loss, "accuracy": batch_correct / size}
            )
            if model.stop_training:
                break
        epoch_logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(epoch_logs)
    return model.history


@contextlib.contextmanager
def _batch_statistics(model):
    """BatchNorm momentum 0 for one forward pass: moving statistics := the batch's."""
    layers = [layer for layer in internals.flatten_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


def _epoch_batches(train_data, stream, steps_per_epoch):
    """One epoch's batches: a pass over `train_data`, or the next steps of `stream`."""
    if not steps_per_epoch:
        return train_data
    return itertools.islice(stream, steps_per_epoch)


def _cardinality(dataset):
    try:
        steps = int(dataset.cardinality())
    except (AttributeError, TypeError):
        return None
    return steps if steps > 0 else None


def _flat_weights(model):
    return backend.pack([variable.value for variable in model.trainable_variables])


def _coupled_l2(position, weight_decay):
    """weight_decay/2 ||theta||^2: PyTorch's coupled weight decay, as a loss term."""
    if not weight_decay:
        return 0.0
    return 0.5 * weight_decay * keras.ops.sum(keras.ops.square(position))


def _penalty(model, position, weight_decay):
    """The model's own penalties plus the coupled L2, at the current weights."""
    return sum(model.losses, 0.0) + _coupled_l2(position, weight_decay)


def _flat_objective(model, weight_decay, loss):
    """The batch objective of one flat weight vector, and its inverse map."""
    shapes = [tuple(v.shape) for v in model.trainable_variables]

    def unflatten(position):
        return backend.unpack(position, shapes)

    def objective(position, x, y, non_trainable):
        logits, _, losses = model.stateless_call(
            unflatten(position), non_trainable, x, training=True, return_losses=True
        )
        value = loss(y, logits)
        for penalty in losses:
            value = value + penalty
        return value + _coupled_l2(position, weight_decay)

    return objective, unflatten
