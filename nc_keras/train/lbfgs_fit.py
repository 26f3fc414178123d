"""Mini-batch L-BFGS training, the paper's third optimizer (Sec. 4.1, Fig. 3).

L-BFGS is no `keras.optimizers.Optimizer`: it minimizes a function of one
flat weight vector, evaluating it many times per step (line search). So
`fit_lbfgs` drives the training loop itself, minimizing each batch's
objective over the flattened trainable weights, and makes the calls of
`model.fit` on the callbacks (progress bar, NeuralCollapse, CSV log,
TensorBoard, BackupAndRestore), so a run logs and resumes as any other.
"""

import contextlib

import keras

from nc_keras import backend


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
):
    """Mini-batch L-BFGS training with Keras callbacks (Sec. 4.1, Fig. 3).

    Each batch of `train_data` (the paper: 2048 samples) gets up to
    `iterations_per_batch` L-BFGS iterations, with a line search, on the
    batch objective

        mean cross-entropy + the model's penalties + weight_decay/2 ||theta||^2

    over all trainable weights theta (the paper's coupled L2, written into
    the objective since L-BFGS has no gradient hook). Inside the objective
    BatchNorm uses batch statistics; its moving statistics are updated once
    per batch, by one training-mode forward pass at the batch's final
    weights, which also gives the logged `loss` and `accuracy`.

    What each backend runs is in `nc_keras.backend.lbfgs_batch_minimizer`:
    on torch, `torch.optim.LBFGS` with the strong Wolfe line search and its
    history kept across batches, exactly the paper's method; on TensorFlow
    and JAX, tensorflow-probability's L-BFGS with a fresh history per batch
    and the Hager-Zhang line search (tfp has no strong Wolfe search).

    Callbacks receive the calls of `model.fit` (History, progress bar,
    `NeuralCollapse`, `EpochCSVLogger`, `TensorBoard`, `BackupAndRestore`
    for resuming).

    Returns:
        The `keras.callbacks.History` of the run.
    """
    objective, unflatten = _flat_objective(model, weight_decay)
    minimize = backend.lbfgs_batch_minimizer(
        objective, history_size=history_size, iterations=iterations_per_batch,
        learning_rate=learning_rate,
    )  # fmt: skip
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0,
        verbose=1 if verbose == "auto" else verbose, epochs=epochs,
        steps=_cardinality(train_data), model=model,
    )  # fmt: skip
    model.stop_training = False
    if not hasattr(model, "optimizer"):
        # Callbacks (TensorBoard, BackupAndRestore) look for one.
        model.optimizer = None
    callback_list.on_train_begin()
    epoch_logs = {}
    # BackupAndRestore sets `_initial_epoch` when it restores a run.
    for epoch in range(model._initial_epoch or 0, epochs):
        callback_list.on_epoch_begin(epoch)
        position = _flat_weights(model)
        loss_sum = correct = seen = 0.0
        for step, (x, y) in enumerate(train_data):
            callback_list.on_train_batch_begin(step)
            x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y, "int32")
            non_trainable = [v.value for v in model.non_trainable_variables]
            position = minimize(position, x, y, non_trainable)
            for variable, value in zip(model.trainable_variables, unflatten(position)):
                variable.assign(value)
            with _batch_norm_momentum(model, iterations_per_batch):
                logits = model(x, training=True)
            batch_loss = float(keras.ops.convert_to_numpy(
                cross_entropy(y, logits) + _penalty(model, position, weight_decay)
            ))  # fmt: skip
            batch_correct = float(keras.ops.convert_to_numpy(
                keras.ops.sum(keras.ops.cast(keras.ops.argmax(logits, -1) == y, "float32"))
            ))  # fmt: skip
            size = int(keras.ops.shape(y)[0])
            loss_sum, correct, seen = loss_sum + batch_loss * size, correct + batch_correct, seen + size
            callback_list.on_train_batch_end(
                step, {"loss": batch_loss, "accuracy": batch_correct / size}
            )
        epoch_logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(epoch_logs)
    return model.history


@contextlib.contextmanager
def _batch_norm_momentum(model, updates):
    """BatchNorm momentum m -> m ** updates for one forward pass.

    One pass then moves the moving statistics as `updates` passes at these
    weights would. PyTorch's L-BFGS updates them at every evaluation of the
    objective (about `iterations_per_batch` per batch); the compiled tfp
    objective is stateless, so the update is made once, scaled to match.
    """
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = layer.momentum**updates
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


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


def _flat_objective(model, weight_decay):
    """The batch objective of one flat weight vector, and its inverse map."""
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def unflatten(position):
        return backend.unpack(position, shapes)

    def objective(position, x, y, non_trainable):
        logits, _, losses = model.stateless_call(
            unflatten(position), non_trainable, x, training=True, return_losses=True
        )
        value = cross_entropy(y, logits)
        for penalty in losses:
            value = value + penalty
        return value + _coupled_l2(position, weight_decay)

    return objective, unflatten
