"""Model passes: run a Keras model over data and measure neural collapse.

Shared by `measure_model` (offline), the `NeuralCollapse` callback and the
`nc-keras measure` command. A pass runs the model with training=False up
to its features h (and any intermediate layers asked for: one extractor,
one forward pass; see `nc_keras.collapse.probes`), streams them into one
`CollapseStatistics` each, and computes the logits W h + b from the
classifier's current W = kernel^T and b, so accuracy and the NCC mismatch
follow the paper's definitions whatever the model's head does after them
(a softmax keeps the argmax). Under data parallelism each process measures
its share of every batch and the statistics of all processes are merged,
so the metrics equal a single-device pass.
"""

import numpy as np

from nc_keras.collapse import precision, probes
from nc_keras.collapse.inputs import to_numpy
from nc_keras.collapse.statistics import FEATURE_ONLY_KEYS
from nc_keras.collapse.streaming import CollapseStatistics

__all__ = [
    "CHUNK_BYTES",
    "accumulate",
    "classifier_weights",
    "feature_extractor",
    "gather_processes",
    "iterate_batches",
    "layer_key",
    "measure",
    "measure_model",
    "ncc_pass",
]

# Model outputs are gathered into chunks of about this many bytes before the
# float64 statistics: one large symmetric product is several times faster
# than many small ones (BLAS threading overhead), and memory stays bounded.
CHUNK_BYTES = 16 * 2**20


# ---------------------------------------------------------------------------
# The model's classifier and features.


def classifier_weights(model, classifier=None):
    """(W, b) of the model's classifier: W = kernel^T (K, d), b (K,) or None.

    `classifier`: a layer or its name; default: the layer named
    "classifier", else the last layer with a (d, K) kernel (see
    `nc_keras.collapse.probes.probe`).
    """
    return probes.classifier_weights(probes.find_classifier(model, classifier))


def feature_extractor(model, features=None, classifier=None, layers=(), layer_reduction="mean"):
    """A keras.Model from the model's inputs to [features, *layer outputs].

    The arguments are those of `nc_keras.collapse.probes.probe`; outputs are
    (N, d_i), maps of rank > 2 pooled (or flattened) as `layer_reduction`
    says.
    """
    extractor = probes.probe(model, features, classifier, layers, layer_reduction).extractor
    if extractor is None:
        raise ValueError("features given as a callable: there is no extractor model")
    return extractor


def layer_key(key, layer_name):
    """The result (and log) key of metric `key` on an intermediate layer."""
    return f"{key}/{layer_name}"


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
    """Yields (outputs, labels): this process's rows of each batch.

    `outputs` is the list of (rows, d_i) arrays the predictor returns
    (features first; one array is a list of one). Without a distribution, whole batches. Under data
    parallelism every process reads the same batches and keeps a
    contiguous 1/P of each; that share is zero-padded to the same multiple
    of the local replica count on every process (the collective forward
    pass needs equal shapes everywhere, and each device an equal slice) and
    the padding's outputs are dropped: no sample is counted twice or lost,
    the last partial batch included. Padding cannot change the other rows:
    inference is per sample (BatchNorm uses its moving statistics).
    """
    import keras

    rank, processes = predictor.process_index, predictor.process_count
    local = predictor.local_replicas
    for x, y in iterate_batches(data, batch_size, max_samples):
        if processes == 1 and local == 1:
            outputs = keras.tree.flatten(predictor.predict(x))
            yield [to_numpy(out).reshape(len(y), -1) for out in outputs], y
            continue
        share = -(-len(y) // processes)
        start, stop = min(rank * share, len(y)), min((rank + 1) * share, len(y))
        padded = -(-share // local) * local
        x = keras.tree.map_structure(lambda a: _zero_pad(to_numpy(a)[start:stop], padded), x)
        count = stop - start
        outputs = keras.tree.flatten(predictor.predict(x))
        outputs = [to_numpy(out).reshape(padded, -1)[:count] for out in outputs]
        yield outputs, y[start:stop]


def _zero_pad(rows, size):
    padding = np.zeros((size - len(rows),) + rows.shape[1:], rows.dtype)
    return np.concatenate([rows, padding])


def _chunks(predictor, data, batch_size, max_samples):
    """Yields (outputs, labels) numpy chunks of whole batches."""
    parts, size = [], 0
    for outputs, y in _process_outputs(predictor, data, batch_size, max_samples):
        parts.append((outputs, y))
        size += sum(out.nbytes for out in outputs)
        if size >= CHUNK_BYTES:
            yield _concatenate(parts)
            parts, size = [], 0
    if parts:
        yield _concatenate(parts)


def _concatenate(parts):
    outputs = [np.concatenate(column) for column in zip(*(out for out, _ in parts))]
    return outputs, np.concatenate([y for _, y in parts])


def _logits(features, W, b):
    logits = features @ W.T
    return logits if b is None else logits + b


# ---------------------------------------------------------------------------
# Passes and measurements.


def accumulate(predictor, data, W, b=None, *, batch_size=256, max_samples=None,
               ncc_means=None, stats=None):
    """One pass over `data`; returns a `CollapseStatistics` per output.

    `predictor` (a `nc_keras.backend.ShardedPredictor`, e.g.
    `ModelProbe.predictor()`) runs the extractor with training=False
    (BatchNorm uses its moving statistics, Dropout is off, no random
    numbers are drawn); its outputs, features first, then any intermediate
    layers, are streamed into `stats` (new ones when None), in chunks of at
    most a few batches (`CHUNK_BYTES`). Accuracy counts argmax(W h + b) for
    the features; when `ncc_means` (K, d) is given, NCC mismatches against
    it are counted too. Under a distribution the result covers this
    process's share of `data` only; `gather_processes` combines the shares.
    """
    for outputs, y in _chunks(predictor, data, batch_size, max_samples):
        if stats is None:
            stats = [CollapseStatistics(W.shape[0]) for _ in outputs]
        logits = _logits(outputs[0], W, b)
        stats[0].update(outputs[0], y, logits)
        if ncc_means is not None:
            stats[0].update_ncc(outputs[0], logits, ncc_means)
        for part, layer_stats in zip(outputs[1:], stats[1:]):
            layer_stats.update(part, y)
    return stats


def ncc_pass(predictor, data, W, b, means, *, batch_size=256, max_samples=None):
    """Second pass: the exact NCC mismatch of the features against `means` (K, d).

    Returns a `CollapseStatistics` that holds only the NCC counts (to
    `merge` into the first pass's).
    """
    counted = CollapseStatistics(W.shape[0], W.shape[1])
    for outputs, _ in _chunks(predictor, data, batch_size, max_samples):
        counted.update_ncc(outputs[0], _logits(outputs[0], W, b), means)
    return counted


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


def measure(probe, data, *, batch_size=256, max_samples=None, ncc="exact",
            ncc_means=None, predictor=None):
    """Streams `data` through a `ModelProbe` and measures.

    `ncc`: "exact" (a second pass against the final class means), "given"
    (against `ncc_means`, in the same pass) or "none" (ncc_mismatch NaN).
    `predictor` (default: `probe.predictor()`, i.e.
    `nc_keras.backend.sharded_predictor` for the active distribution) runs
    the extractor; under data parallelism each process measures its share
    of every batch and the statistics of all processes are merged, so the
    metrics equal a single-device pass.

    Returns:
        (result, stats, layer_stats): the metrics of the features (keys
        `METRIC_KEYS`) plus, for every intermediate layer, its
        `FEATURE_ONLY_KEYS` under `layer_key(key, name)` ("nc1/<name>");
        the features' `CollapseStatistics`; and {name: statistics} of the
        layers.
    """
    W, b = probe.weights()
    predictor = probe.predictor() if predictor is None else predictor
    given = ncc_means if ncc == "given" else None
    options = dict(batch_size=batch_size, max_samples=max_samples)
    stats = [CollapseStatistics(*W.shape)] + [
        CollapseStatistics(W.shape[0]) for _ in probe.layer_names]
    stats = accumulate(predictor, data, W, b, ncc_means=given, stats=stats, **options)
    several = predictor.process_count > 1
    if several:
        stats = [gather_processes(part, predictor.allgather) for part in stats]
    if ncc == "exact":
        # Each process compares its share with the merged means.
        counted = ncc_pass(predictor, data, W, b, stats[0].class_means, **options)
        stats[0].merge(gather_processes(counted, predictor.allgather) if several else counted)
    result = stats[0].measure(W, b)
    layer_stats = dict(zip(probe.layer_names, stats[1:]))
    for name, part in layer_stats.items():
        values = part.measure()
        result.update({layer_key(key, name): values[key] for key in FEATURE_ONLY_KEYS})
    return result, stats[0], layer_stats


def measure_model(model, data, *, features=None, classifier=None, layers=(),
                  layer_reduction="mean", batch_size=256, max_samples=None, ncc="exact"):
    """NC1-NC4 and the extras of a trained model on `data`, offline.

    With K classes, class means mu_k, global mean mu_G, centred means Hbar
    and E = (I_K - 11^T/K)/sqrt(K-1) (Zhu et al. 2021, Sec. 4):
    NC1 = tr(Sigma_W Sigma_B^+)/K, NC2 = ||W W^T/||W W^T||_F - E||_F,
    NC3 = ||W Hbar/||W Hbar||_F - E||_F, NC4 = ||b + W mu_G||_2.

    Args:
        model: any built Keras model (functional, Sequential, with nested
            models; subclassed with `features` a callable).
        data: a tf.data.Dataset of (x, y) batches, a keras.utils.PyDataset, or
            an (x, y) tuple of arrays.
        features, classifier: where h and W, b come from; default: the
            layer named "classifier" (else the last layer with a (d, K)
            kernel) and its input. See `nc_keras.collapse.probes.probe`.
        layers: intermediate layers (or names) measured too, in the same
            pass: their `FEATURE_ONLY_KEYS` as "nc1/<name>", ...
        layer_reduction: "mean" (global average pooling of maps) or "flatten".
        ncc: "exact" (default) makes a second pass over `data` for the NCC
            mismatch against the final class means; "none" skips it (NaN).
    Returns:
        dict of Python floats keyed by `METRIC_KEYS`, the layer keys, and
        "num_samples".
    """
    if ncc not in ("exact", "none"):
        raise ValueError(f"ncc must be 'exact' or 'none'; got {ncc!r}")
    # A mixed-precision model is measured in float32 (`precision`).
    model_probe = precision.probe(model, features, classifier, layers, layer_reduction)
    result, stats, _ = measure(model_probe, data, batch_size=batch_size,
                               max_samples=max_samples, ncc=ncc)
    result["num_samples"] = float(stats.num_samples)
    return result
