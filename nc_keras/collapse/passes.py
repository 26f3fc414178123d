"""Model passes: run a Keras model over data and measure neural collapse.

Shared by `measure_model` (offline), the `NeuralCollapse` callback and the
`nc-keras measure` command. A pass runs the model's "features" and
"classifier" outputs with training=False, streams them into a
`CollapseStatistics` and reads W and b from the "classifier" layer; under
data parallelism each process measures its share of every batch and the
statistics of all processes are merged, so the metrics equal a
single-device pass.
"""

import numpy as np

from nc_keras.collapse.inputs import to_numpy
from nc_keras.collapse.statistics import CollapseStatistics

__all__ = [
    "CHUNK_BYTES",
    "accumulate",
    "classifier_weights",
    "feature_extractor",
    "gather_processes",
    "iterate_batches",
    "measure",
    "measure_model",
    "ncc_pass",
]

# Model outputs are gathered into chunks of about this many bytes before the
# float64 statistics: one large symmetric product is several times faster
# than many small ones (BLAS threading overhead), and memory stays bounded.
CHUNK_BYTES = 16 * 2**20


# ---------------------------------------------------------------------------
# The model's two outputs and its classifier.


def classifier_weights(model):
    """(W, b) of the model's "classifier" layer: W = kernel^T (K, d), b or None."""
    try:
        layer = model.get_layer("classifier")
    except ValueError as error:
        raise ValueError(
            "the model has no layer named 'classifier' (the last linear "
            "layer, whose kernel is (d, K))"
        ) from error
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        raise ValueError(f"layer 'classifier' ({type(layer).__name__}) has no kernel")
    W = to_numpy(kernel, np.float64).T
    bias = getattr(layer, "bias", None)
    b = None if bias is None else to_numpy(bias, np.float64)
    return W, b


def feature_extractor(model):
    """A keras.Model from the model's inputs to [features, classifier output]."""
    import keras

    try:
        features = model.get_layer("features").output
        outputs = model.get_layer("classifier").output
    except (ValueError, AttributeError) as error:
        raise ValueError(
            "neural-collapse measurement needs a built functional model with "
            f"layers named 'features' and 'classifier' ({error})"
        ) from error
    # model.input keeps the structure (single tensor, list or dict) of the inputs.
    return keras.Model(model.input, [features, outputs], name="nc_features")


# ---------------------------------------------------------------------------
# Data.


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - tensorflow is a dependency
        return False
    return isinstance(data, tf.data.Dataset)


def _split_batch(batch):
    if isinstance(batch, dict) or not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("data must yield (x, y) or (x, y, sample_weight) batches")
    return batch[0], batch[1]


def _slices(x, y, batch_size):
    for start in range(0, len(y), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def iterate_batches(data, batch_size=256, max_samples=None):
    """Yields (x, y) numpy batches from any data the NC measurement accepts.

    Args:
        data: a tf.data.Dataset of (x, y[, w]) batches, a keras.utils.PyDataset,
            or an (x, y) tuple of arrays (batched here by `batch_size`).
        max_samples: stop after this many samples (the first ones, in order:
            no sampling, so no random numbers are drawn).
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _is_tf_dataset(data):
        batches = _slices(*data, batch_size)
    elif _is_tf_dataset(data):
        if max_samples is None and data.cardinality() == -1:  # tf.data.INFINITE_CARDINALITY
            raise ValueError("the dataset repeats forever: pass max_samples")
        batches = (_split_batch(batch) for batch in data.as_numpy_iterator())
    elif hasattr(data, "__getitem__") and hasattr(data, "num_batches"):
        count = data.num_batches
        if count is None:
            raise ValueError("a PyDataset of unknown length cannot be measured")
        batches = (_split_batch(data[i]) for i in range(count))
    else:
        raise ValueError(
            "data must be a tf.data.Dataset, a keras.utils.PyDataset or an "
            f"(x, y) tuple of arrays; got {type(data).__name__}"
        )
    remaining = np.inf if max_samples is None else int(max_samples)
    for x, y in batches:
        if remaining <= 0:
            return
        y = to_numpy(y)
        if len(y) > remaining:
            x = x[: int(remaining)] if not isinstance(x, dict) else {
                k: v[: int(remaining)] for k, v in x.items()}
            y = y[: int(remaining)]
        remaining -= len(y)
        yield x, y


# ---------------------------------------------------------------------------
# Running the model: whole batches, or this process's share of each.


def _process_outputs(predictor, data, batch_size, max_samples):
    """Yields (features, labels, logits) of this process's rows of each batch.

    Without a distribution, whole batches through `predict_on_batch`. Under
    data parallelism every process reads the same batches and keeps a
    contiguous 1/P of each; that share is zero-padded to the same multiple of
    the local replica count on every process (the collective forward pass
    needs equal shapes everywhere, and each device an equal slice) and the
    padding's outputs are dropped: no sample is counted twice or lost, the
    last partial batch included. Padding cannot change the other rows:
    inference is per sample (BatchNorm uses its moving statistics).
    """
    import keras

    rank, processes = predictor.process_index, predictor.process_count
    local = predictor.local_replicas
    for x, y in iterate_batches(data, batch_size, max_samples):
        if processes == 1 and local == 1:
            features, logits = predictor.predict(x)
            yield to_numpy(features).reshape(len(y), -1), y, to_numpy(logits)
            continue
        share = -(-len(y) // processes)
        start, stop = min(rank * share, len(y)), min((rank + 1) * share, len(y))
        padded = -(-share // local) * local
        x = keras.tree.map_structure(lambda a: _zero_pad(to_numpy(a)[start:stop], padded), x)
        features, logits = predictor.predict(x)
        count = stop - start
        features = to_numpy(features).reshape(padded, -1)[:count]
        yield features, y[start:stop], to_numpy(logits)[:count]


def _zero_pad(rows, size):
    padding = np.zeros((size - len(rows),) + rows.shape[1:], rows.dtype)
    return np.concatenate([rows, padding])


def _feature_chunks(predictor, data, batch_size, max_samples):
    """Yields (features, labels, logits) numpy chunks of whole batches."""
    parts, size = [], 0
    for features, y, logits in _process_outputs(predictor, data, batch_size, max_samples):
        parts.append((features, y, logits))
        size += features.nbytes
        if size >= CHUNK_BYTES:
            yield tuple(np.concatenate(column) for column in zip(*parts))
            parts, size = [], 0
    if parts:
        yield tuple(np.concatenate(column) for column in zip(*parts))


def _predictor(extractor, predictor, model=None):
    """`predictor`, or the active distribution's way to run `extractor`."""
    if predictor is not None:
        return predictor
    from nc_keras import backend

    return backend.sharded_predictor(extractor if model is None else model, extractor)


# ---------------------------------------------------------------------------
# Passes and measurements.


def accumulate(extractor, data, num_classes, *, batch_size=256, max_samples=None,
               ncc_means=None, stats=None, predictor=None):
    """One pass of `extractor` (from `feature_extractor`) over `data`.

    Runs the extractor with training=False (BatchNorm uses its moving
    statistics, Dropout is off, no random numbers are drawn) and streams its
    outputs into `stats` (a new `CollapseStatistics` when None), in chunks of
    at most a few batches (`CHUNK_BYTES`). When `ncc_means` (K, d) is given,
    also counts NCC mismatches against it. Under a distribution (see
    `nc_keras.backend.sharded_predictor`) the result covers this process's
    share of `data` only; `gather_processes` combines the shares.
    """
    predictor = _predictor(extractor, predictor)
    stats = CollapseStatistics(num_classes) if stats is None else stats
    for features, y, logits in _feature_chunks(predictor, data, batch_size, max_samples):
        stats.update(features, y, logits)
        if ncc_means is not None:
            stats.update_ncc(features, logits, ncc_means)
    return stats


def ncc_pass(extractor, data, stats, *, batch_size=256, max_samples=None,
             means=None, predictor=None):
    """Second pass: exact NCC mismatch against `means` (default: those of `stats`)."""
    predictor = _predictor(extractor, predictor)
    means = stats.class_means if means is None else means
    for features, _, logits in _feature_chunks(predictor, data, batch_size, max_samples):
        stats.update_ncc(features, logits, means)
    return stats


def gather_processes(stats, allgather):
    """`stats` merged over all processes of a multi-process run.

    `allgather(vector)` (e.g. `nc_keras.backend.ShardedPredictor.allgather`)
    exchanges one float64 vector per process and returns them all, stacked
    in process order (P, n); the shards are merged in that order, so every
    process ends with the same statistics, bit for bit. With one process
    `stats` itself comes back.
    """
    state = stats.get_state()
    keys = sorted(state)
    shapes = [np.shape(state[key]) for key in keys]
    vector = np.concatenate([np.asarray(state[key], np.float64).ravel() for key in keys])
    rows = allgather(vector)
    if len(rows) == 1:
        return stats
    bounds = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]
    merged = CollapseStatistics(stats.num_classes, stats.dim)
    for row in rows:
        pieces = np.split(row, bounds)
        merged.merge(CollapseStatistics.from_state(
            {key: piece.reshape(shape) for key, piece, shape in zip(keys, pieces, shapes)}))
    return merged


def measure(extractor, model, data, *, batch_size=256, max_samples=None,
            ncc="exact", ncc_means=None, predictor=None):
    """Streams `data` through `extractor` and measures; returns (metrics, stats).

    `ncc`: "exact" (a second pass against the final class means), "given"
    (against `ncc_means`, in the same pass) or "none" (ncc_mismatch NaN).
    `predictor` (default: `nc_keras.backend.sharded_predictor` for the
    active distribution) runs the extractor; under data parallelism each
    process measures its share of every batch and the statistics of all
    processes are merged, so the metrics equal a single-device pass.
    """
    W, b = classifier_weights(model)
    predictor = _predictor(extractor, predictor, model)
    given = ncc_means if ncc == "given" else None
    options = dict(batch_size=batch_size, max_samples=max_samples, predictor=predictor)
    stats = accumulate(extractor, data, W.shape[0], ncc_means=given,
                       stats=CollapseStatistics(*W.shape), **options)
    several = predictor.process_count > 1
    if several:
        stats = gather_processes(stats, predictor.allgather)
    if ncc == "exact":
        # Each process compares its share with the merged means.
        counted = ncc_pass(extractor, data, CollapseStatistics(*W.shape),
                           means=stats.class_means, **options)
        stats.merge(gather_processes(counted, predictor.allgather) if several else counted)
    return stats.measure(W, b), stats


def measure_model(model, data, *, batch_size=256, max_samples=None, ncc="exact"):
    """NC1-NC4 and the extras of a trained model on `data`, offline.

    Args:
        model: a functional Keras model with layers named "features" (the
            penultimate output the classifier consumes) and "classifier"
            (kernel (d, K), bias or None).
        data: a tf.data.Dataset of (x, y) batches, a keras.utils.PyDataset, or
            an (x, y) tuple of arrays.
        ncc: "exact" (default) makes a second pass over `data` for the NCC
            mismatch against the final class means; "none" skips it (NaN).
    Returns:
        dict of Python floats keyed by `METRIC_KEYS`, plus "num_samples".
    """
    if ncc not in ("exact", "none"):
        raise ValueError(f"ncc must be 'exact' or 'none'; got {ncc!r}")
    result, stats = measure(feature_extractor(model), model, data,
                            batch_size=batch_size, max_samples=max_samples, ncc=ncc)
    result["num_samples"] = float(stats.num_samples)
    return result
