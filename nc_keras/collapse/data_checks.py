"""What a repeated measurement is given, checked before it is first needed.

The `NeuralCollapse` callback measures at epoch ends; data it cannot use
would otherwise fail only after the first training epoch, with an error from
deep inside the pass. `check_kind` runs when the callback is made (no model
needed), `check_against_model` when training begins: each error names the
argument (`train_data`, `validation_data`) and says what to pass.
"""

import inspect

import keras
import numpy as np

from nc_keras import validation
from nc_keras.collapse import passes

__all__ = ["check_against_model", "check_kind"]

KINDS = ("a tf.data.Dataset, a keras.utils.PyDataset or an (x, y) or (x, y, sample_weight) "
         "tuple of arrays")


def check_kind(data, argument):
    """`ValueError` naming `argument` unless `data` is a kind a pass can read at every epoch.

    Arrays are also checked to hold as many samples in x (every input) as
    in y (and the weights).
    """
    if inspect.isgenerator(data) or (hasattr(data, "__next__") and not passes._is_tf_dataset(data)):
        raise ValueError(
            f"{argument}: a generator is consumed by its first pass, and NeuralCollapse "
            f"measures at every epoch end; pass {KINDS} (e.g. "
            "keras.utils.PyDataset, or tf.data.Dataset.from_generator)")
    if passes._is_arrays(data):
        x, y = data[0], data[1]
        counts = {len(leaf) for leaf in keras.tree.flatten(x)}
        if counts != {len(y)}:
            raise ValueError(f"{argument}: x has {' and '.join(map(str, sorted(counts)))} samples "
                             f"but y has {len(y)}")
        if len(data) == 3 and data[2] is not None and len(data[2]) != len(y):
            raise ValueError(f"{argument}: sample_weight has {len(data[2])} rows but y has {len(y)}")
        return
    if passes._is_tf_dataset(data) or (hasattr(data, "__getitem__") and hasattr(data, "num_batches")):
        return
    raise ValueError(f"{argument}: got {_kind(data)}; pass {KINDS}")


def _kind(data):
    if isinstance(data, (tuple, list)):
        return f"a {type(data).__name__} of {len(data)}"
    return f"a {type(data).__name__}"


def check_against_model(data, argument, probe, predictor, batch_size, ignore_class=None):
    """`data` ready for the passes, checked against the model; `ValueError` naming `argument`.

    An unbatched `tf.data.Dataset` (its x one rank below the model's
    input) comes back batched by `batch_size`. The model must run on the
    first batch, and the labels must lie in [0, K) for the classifier's K:
    all of them for arrays, the first batch's for other data.
    """
    if passes._is_tf_dataset(data) and _unbatched(data, probe.model):
        data = data.batch(batch_size)
    x, y, w = next(passes.iterate_batches(data, batch_size, batch_size, sample_weights=True))
    try:
        outputs = keras.tree.flatten(predictor.predict(x))
    except Exception as error:  # noqa: BLE001 - whatever the model raises
        raise ValueError(
            f"{argument}: the model cannot run on its first batch (x of shape "
            f"{_shapes(x)}): {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    sequence = np.ndim(outputs[0]) == 3  # token-level: every position a sample
    if passes._is_arrays(data) and not sequence:  # all the labels, cheaply
        y, w = data[1], (data[2] if len(data) == 3 else None)
    kept = _kept_labels(passes.to_numpy(y), None if w is None else passes.to_numpy(w),
                        sequence, ignore_class)
    num_classes = int(probe.weights()[0].shape[0])
    try:
        validation.labels(kept, num_classes)
    except ValueError as error:
        head = f" the classifier {probe.classifier.name!r}" if probe.classifier is not None else " the classifier"
        # K is the classifier's here: the callback has no num_classes to set.
        reason = str(error).replace("; set num_classes or fix the labels", "")
        raise ValueError(f"{argument}: {reason} (the labels must be class indices:{head} has "
                         f"K = {num_classes} outputs)") from None
    return data


def _kept_labels(y, w, sequence, ignore_class):
    """The labels a pass counts: weight-0 samples and `ignore_class` left out."""
    if sequence:
        y = y.reshape(-1)
        w = None if w is None else w.reshape(-1)
    keep = np.ones(len(y), bool)
    if w is not None and w.shape[:1] == y.shape[:1]:
        keep &= w.reshape(len(y), -1)[:, 0] != 0
    if ignore_class is not None and y.ndim == 1:
        keep &= y != ignore_class
    return y[keep]


def _shapes(x):
    shapes = [tuple(np.shape(leaf)) for leaf in keras.tree.flatten(x)]
    return shapes[0] if len(shapes) == 1 else shapes


def _unbatched(dataset, model):
    """Whether the dataset yields single samples rather than batches."""
    spec = dataset.element_spec
    if not isinstance(spec, (tuple, list)) or len(spec) < 2:
        return False  # refused by the pass, with its message
    x_specs = keras.tree.flatten(spec[0])
    inputs = getattr(model, "inputs", None) or []
    if inputs:
        return len(x_specs[0].shape) == len(keras.tree.flatten(inputs)[0].shape) - 1
    return len(spec[1].shape) == 0  # scalar labels: one sample each
