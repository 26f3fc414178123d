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

import warnings

import keras
import numpy as np

from nc_keras import deprecation
from nc_keras.collapse import formulas, precision, probes
from nc_keras.collapse.inputs import to_numpy
from nc_keras.collapse.statistics import FEATURE_ONLY_KEYS
from nc_keras.collapse.streaming import CollapseStatistics

__all__ = [
    "CHUNK_BYTES",
    "NCC_MODES",
    "accumulate",
    "as_unlabelled",
    "check_ncc",
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

# How the NCC mismatch is counted: it needs the class means of the whole
# pass, known only at its end. "previous": against given means (those of a
# previous measurement), in the same pass, or exactly when there are none;
# "exact": a second pass against the final means; "none": not counted (NaN).
NCC_MODES = ("previous", "exact", "none")
_NCC_RENAMED = {"given": "previous"}  # the former name in `measure`


def check_ncc(ncc, where="measure", stacklevel=2):
    """`ncc` if it is one of `NCC_MODES` (a former name: its new one, with a
    DeprecationWarning pointing `stacklevel` frames up, 1 being the caller);
    else ValueError."""
    ncc = deprecation.renamed_value(ncc, _NCC_RENAMED, "ncc", where, stacklevel + 1)
    if ncc not in NCC_MODES:
        raise ValueError(f"ncc must be one of {NCC_MODES}; got {ncc!r}")
    return ncc


# ---------------------------------------------------------------------------
# The model's classifier and features.


def classifier_weights(model, classifier=None):
    """(W, b) of the model's classifier: W = kernel^T (K, d), b (K,) or None.

    `classifier`: a layer or its name; default: the layer named
    "classifier", else the last layer with a (d, K) kernel (see
    `nc_keras.collapse.probes.probe`).
    """
    return probes.classifier_weights(probes.find_classifier(model, classifier))


@deprecation.renamed_arguments(layer_reduction="pooling")
def feature_extractor(model, features=None, classifier=None, layers=(), pooling="mean"):
    """A keras.Model from the model's inputs to [features, *layer outputs].

    The arguments are those of `nc_keras.collapse.probes.probe`; outputs are
    (N, d_i), maps of rank > 2 pooled (or flattened) as `pooling` says.
    """
    extractor = probes.probe(model, features, classifier, layers, pooling).extractor
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
    return batch[0], batch[1], batch[2] if len(batch) > 2 else None


def _slices(x, y, w, batch_size):
    def rows(a, start):
        return None if a is None else keras.tree.map_structure(
            lambda leaf: leaf[start:start + batch_size], a)

    for start in range(0, len(y), batch_size):
        yield rows(x, start), y[start:start + batch_size], rows(w, start)


def _is_arrays(data):
    return isinstance(data, (tuple, list)) and len(data) in (2, 3) and not _is_tf_dataset(data)


def iterate_batches(data, batch_size=256, max_samples=None, sample_weights=False):
    """Yields (x, y) numpy batches from any data the NC measurement accepts.

    Args:
        data: a tf.data.Dataset of (x, y[, w]) batches, a keras.utils.PyDataset,
            or an (x, y) or (x, y, w) tuple of arrays (batched here by
            `batch_size`).
        max_samples: stop after this many samples (the first ones, in order:
            no sampling, so no random numbers are drawn).
        sample_weights: yield (x, y, w) triples, w None when the data has
            no weights.
    """
    if _is_arrays(data):
        batches = _slices(data[0], data[1], data[2] if len(data) == 3 else None, batch_size)
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
            f"(x, y) or (x, y, sample_weight) tuple of arrays; got {type(data).__name__}"
        )
    remaining = np.inf if max_samples is None else int(max_samples)
    for x, y, w in batches:
        if remaining <= 0:
            return
        y = to_numpy(y)
        if len(y) > remaining:
            cut = int(remaining)
            x = keras.tree.map_structure(lambda leaf: leaf[:cut], x)
            y = y[:cut]
            w = None if w is None else w[:cut]
        remaining -= len(y)
        yield (x, y, w) if sample_weights else (x, y)


# ---------------------------------------------------------------------------
# Running the model: whole batches, or this process's share of each.


def _select_classes(x, y, w, classes):
    """The rows of a batch whose label is in `classes`, labels relabelled to
    their index in it (held-out classes measured as classes 0..m-1)."""
    y = to_numpy(y)
    if y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise ValueError(f"classes= needs integer labels (N,) or (N, 1); got shape {y.shape}")
    y = y.reshape(-1)
    order = np.argsort(classes, kind="stable")
    position = np.searchsorted(classes, y, sorter=order)
    position = np.minimum(position, len(classes) - 1)
    keep = classes[order[position]] == y
    rows = np.flatnonzero(keep)
    x = keras.tree.map_structure(lambda a: to_numpy(a)[rows], x)
    return x, order[position[keep]], None if w is None else to_numpy(w)[rows]


def _process_outputs(predictor, data, batch_size, max_samples, ignore_class=None,
                     classes=None):
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

    Samples (or, for (B, T, d) features, positions) whose sample weight is
    0 or whose label is `ignore_class` are dropped (`_kept_rows`). With
    `classes` (an integer array), only samples labelled one of them are run,
    labelled by their index in it (`max_samples` counts the samples read).
    """
    rank, processes = predictor.process_index, predictor.process_count
    local = predictor.local_replicas
    for x, y, w in iterate_batches(data, batch_size, max_samples, sample_weights=True):
        if classes is not None:
            # Every process drops the same rows: the batches stay the same everywhere.
            x, y, w = _select_classes(x, y, w, classes)
            if len(y) == 0:
                continue
        if processes == 1 and local == 1:
            outputs = keras.tree.flatten(predictor.predict(x))
            yield _kept_rows([to_numpy(out) for out in outputs], y, w, ignore_class)
            continue
        share = -(-len(y) // processes)
        start, stop = min(rank * share, len(y)), min((rank + 1) * share, len(y))
        padded = -(-share // local) * local
        x = keras.tree.map_structure(lambda a: _zero_pad(to_numpy(a)[start:stop], padded), x)
        count = stop - start
        outputs = keras.tree.flatten(predictor.predict(x))
        outputs = [to_numpy(out)[:count] for out in outputs]
        yield _kept_rows(outputs, y[start:stop], None if w is None else to_numpy(w)[start:stop],
                         ignore_class)


def _kept_rows(outputs, y, w, ignore_class):
    """(outputs as (rows, d_i) arrays, labels (rows,)) of the kept samples.

    Token-level collapse: (B, T, d) features with (B, T) labels make every
    position a sample (B T rows). A sample weight of 0 (Keras's mask of
    padded positions) or a label equal to `ignore_class` drops the row;
    other weights are not used (each kept sample counts once, as the
    paper's statistics are unweighted), with one warning.
    """
    y = to_numpy(y)
    sequence = outputs[0].ndim == 3
    if sequence:
        if y.shape[:2] != outputs[0].shape[:2] or y.ndim > 3 or (y.ndim == 3 and y.shape[2] != 1):
            raise ValueError(
                f"the features are a sequence of shape {outputs[0].shape} (every position "
                f"a sample): labels must have shape {outputs[0].shape[:2]}; got {y.shape}")
        y = y.reshape(-1)
    keep = None
    if w is not None:
        w = to_numpy(w).reshape(-1)
        if w.shape[0] != y.shape[0]:
            raise ValueError(f"sample weights of shape {w.shape} do not match the "
                             f"{y.shape[0]} {'positions' if sequence else 'samples'}")
        keep = w != 0
        if not np.isin(w, (0, 1)).all():  # shown once per run by the default filter
            warnings.warn("sample weights other than 0 and 1 are not used by the collapse "
                          "measurement: a weight of 0 drops a sample, any other keeps it once",
                          RuntimeWarning, stacklevel=4)
    if ignore_class is not None and y.ndim == 1:
        ignored = y == ignore_class
        keep = ~ignored if keep is None else keep & ~ignored
    rows = []
    for out in outputs:
        # Explicit widths: a process's share may be empty (-1 is then ambiguous).
        out = out.reshape(-1, out.shape[-1]) if sequence and out.ndim == 3 else out.reshape(
            len(out), int(np.prod(out.shape[1:])))
        rows.append(out if keep is None else out[keep])
    return rows, (y if keep is None else y[keep])


def _zero_pad(rows, size):
    padding = np.zeros((size - len(rows),) + rows.shape[1:], rows.dtype)
    return np.concatenate([rows, padding])


def _chunks(predictor, data, batch_size, max_samples, ignore_class=None, classes=None):
    """Yields (outputs, labels) numpy chunks of whole batches."""
    parts, size = [], 0
    for outputs, y in _process_outputs(predictor, data, batch_size, max_samples, ignore_class,
                                       classes):
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


# ---------------------------------------------------------------------------
# Passes and measurements.


def _per_output(means, count):
    """`ncc_means` as one entry per output: (K, d) means of the features, or a list."""
    if means is None:
        return [None] * count
    if isinstance(means, (list, tuple)):
        if len(means) > count:
            raise ValueError(f"ncc_means holds {len(means)} arrays for {count} outputs")
        return list(means) + [None] * (count - len(means))
    return [means] + [None] * (count - 1)


def accumulate(predictor, data, W, b=None, *, batch_size=256, max_samples=None,
               ncc_means=None, stats=None, ignore_class=None, absent_classes="nan",
               classes=None):
    """One pass over `data`; returns a `CollapseStatistics` per output.

    `predictor` (a `nc_keras.backend.ShardedPredictor`, e.g.
    `ModelProbe.predictor()`) runs the extractor with training=False
    (BatchNorm uses its moving statistics, Dropout is off, no random
    numbers are drawn); its outputs, features first, then any intermediate
    layers, are streamed into `stats` (new ones when None), in chunks of at
    most a few batches (`CHUNK_BYTES`). Accuracy counts argmax(W h + b) for
    the features (W None: not counted); `ncc_means`, the (K, d) class means
    of the features or a list of them per output (features first, None
    where not given), has the NCC metrics counted against them: NCC
    mismatch (features) and NCC accuracy (every output). Under a
    distribution the result covers this process's share of `data` only;
    `gather_processes` combines the shares. Samples (positions, for
    sequence features) labelled `ignore_class` or weighted 0 are left out;
    with `classes`, only those of these classes, as classes 0..m-1. The
    predictions argmax(W h + b) are taken over tiles of classes: no (B, K)
    logits exist, whatever K.
    """
    num_classes = len(classes) if classes is not None else W.shape[0]
    for outputs, y in _chunks(predictor, data, batch_size, max_samples, ignore_class, classes):
        if stats is None:
            stats = [CollapseStatistics(num_classes, absent_classes=absent_classes)
                     for _ in outputs]
        means = _per_output(ncc_means, len(outputs))
        predicted = None if W is None else formulas.classifier_predictions(outputs[0], W, b)
        stats[0].update(outputs[0], y, predictions=predicted)
        for index, (part, part_stats, reference) in enumerate(zip(outputs, stats, means)):
            if index:  # the layers (the features are updated above, with predictions)
                part_stats.update(part, y)
            if reference is not None:
                part_stats.update_ncc(part, None, reference, labels=y,
                                      predictions=None if index else predicted)
    return stats


def ncc_pass(predictor, data, W, b, means, *, batch_size=256, max_samples=None,
             ignore_class=None, classes=None):
    """Second pass: the exact NCC metrics against final class means.

    `means`: the (K, d) class means of the features: returns a
    `CollapseStatistics` holding only their NCC counts (mismatch with
    argmax(W h + b), W not None, and accuracy), to `merge` into the first
    pass's. Or a list with an entry per output (features first; None:
    not counted): returns a list of such statistics.
    """
    several = isinstance(means, (list, tuple))
    counted = None
    num_classes = len(classes) if classes is not None else W.shape[0]
    for outputs, y in _chunks(predictor, data, batch_size, max_samples, ignore_class, classes):
        references = _per_output(means, len(outputs))
        if counted is None:
            counted = [CollapseStatistics(num_classes) for _ in outputs]
        predicted = None if W is None else formulas.classifier_predictions(outputs[0], W, b)
        for index, (part, reference) in enumerate(zip(outputs, references)):
            if reference is not None:
                counted[index].update_ncc(part, None, reference, labels=y,
                                          predictions=predicted if index == 0 else None)
    if counted is None:
        counted = [CollapseStatistics(num_classes) for _ in _per_output(means, 1)]
    return counted if several else counted[0]


def _ood_means(predictor, ood_data, batch_size, max_samples, count):
    """The mean of each output's features over `ood_data` (labels unused), all processes."""
    sums, totals = None, np.zeros(count)
    for outputs, _ in _chunks(predictor, as_unlabelled(ood_data), batch_size, max_samples):
        if sums is None:
            sums = [np.zeros(out.shape[1]) for out in outputs]
        for index, out in enumerate(outputs):
            finite = out[np.isfinite(out).all(axis=1)].astype(np.float64)
            sums[index] += finite.sum(axis=0)
            totals[index] += finite.shape[0]
    if sums is None:
        raise ValueError("ood_data holds no sample")
    widths = [len(part) for part in sums]
    rows = predictor.allgather(np.concatenate(sums + [totals])).sum(axis=0)
    bounds = np.cumsum(widths)
    parts = np.split(rows, bounds)
    return [part / max(total, 1.0) for part, total in zip(parts[:-1], parts[-1])]


def as_unlabelled(data):
    """OOD data as the passes read it: a bare array of inputs gets dummy labels.

    Data of the kinds `iterate_batches` reads passes through; anything else
    but an array raises a ValueError (checked where it is given, before any
    training).
    """
    if _is_arrays(data) or _is_tf_dataset(data) or hasattr(data, "num_batches"):
        return data
    if not hasattr(data, "__array__"):
        raise ValueError("ood_data must be an array of inputs, an (x, y) tuple, a "
                         f"tf.data.Dataset or a keras.utils.PyDataset; got {type(data).__name__}")
    x = to_numpy(data)
    return x, np.zeros(len(x), dtype=np.int64)


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
    merged = CollapseStatistics(stats.num_classes, stats.dim,
                                absent_classes=stats.absent_classes, tile_bytes=stats.tile_bytes)
    for row in rows:
        pieces = np.split(row, bounds)
        merged.merge(CollapseStatistics.from_state(
            {key: piece.reshape(shape) for key, piece, shape in zip(keys, pieces, shapes)}))
    return merged


def measure(probe, data, *, batch_size=256, max_samples=None, ncc="exact",
            ncc_means=None, predictor=None, ignore_class=None, absent_classes="nan",
            ood_data=None, classes=None):
    """Streams `data` through a `ModelProbe` and measures.

    `ncc`: one of `NCC_MODES`, for the NCC mismatch and the NCC accuracy
    of the features and of every layer: "previous" (against `ncc_means`,
    in the same pass; an output without them gets a second pass, as
    "exact"), "exact" (a second pass against the final class means) or
    "none" (NaN). `ncc_means`: the features' (K, d) class means, or a list
    with one entry per output (features, then the layers; None where
    missing), as `class_means` of the returned statistics.
    `ignore_class`: a label whose samples (positions) are left out;
    `absent_classes`: "nan" or "skip" (`CollapseStatistics`).
    `ood_data`: out-of-distribution data (the same kinds as `data`, or
    an array of inputs; labels unused): adds "nc5" for the features and
    "nc5/<layer>" (Ammar et al. 2024, `formulas.nc5`), one more pass.
    `classes`: measure only the samples of these classes, as classes
    0..m-1 (held-out classes, see `nc_keras.collapse.transfer_cdnv`);
    then the classifier's metrics are NaN (it has no row for them).
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
    ncc = check_ncc(ncc)
    count = 1 + len(probe.layer_names)
    W, b = probe.weights()
    if classes is not None:
        classes = _check_classes(classes)
        W = b = None  # the classifier has no rows for held-out classes
    num_classes = W.shape[0] if classes is None else len(classes)
    predictor = probe.predictor() if predictor is None else predictor
    given = _per_output(ncc_means, count) if ncc == "previous" else [None] * count
    options = dict(batch_size=batch_size, max_samples=max_samples, ignore_class=ignore_class,
                   classes=classes)
    stats = [CollapseStatistics(num_classes, absent_classes=absent_classes) for _ in range(count)]
    stats = accumulate(predictor, data, W, b, ncc_means=given, stats=stats, **options)
    several = predictor.process_count > 1
    if several:
        stats = [gather_processes(part, predictor.allgather) for part in stats]
    if ncc != "none" and any(means is None for means in given):
        # The outputs without given means, against the merged final means:
        # each process compares its share.
        final = [part.class_means if means is None else None
                 for part, means in zip(stats, given)]
        counted = ncc_pass(predictor, data, W, b, final, **options)
        for part, extra in zip(stats, counted):
            part.merge(gather_processes(extra, predictor.allgather) if several else extra)
    result = stats[0].measure(W, b)
    layer_stats = dict(zip(probe.layer_names, stats[1:]))
    for name, part in layer_stats.items():
        values = part.measure()
        result.update({layer_key(key, name): values[key] for key in FEATURE_ONLY_KEYS})
    if ood_data is not None:
        ood = _ood_means(predictor, ood_data, batch_size, max_samples, count)
        result["nc5"] = stats[0].nc5(ood[0])
        for name, part, mean in zip(probe.layer_names, stats[1:], ood[1:]):
            result[layer_key("nc5", name)] = part.nc5(mean)
    if "num_classes_present" in result:
        result["num_classes_present"] = result.pop("num_classes_present")  # after the layers
    return result, stats[0], layer_stats


def _check_classes(classes):
    """`classes` as a 1-D array of distinct integer labels (at least two)."""
    array = np.asarray(classes)
    if array.ndim != 1 or array.size < 2 or not np.issubdtype(array.dtype, np.integer) \
            or len(np.unique(array)) != array.size or array.min() < 0:
        raise ValueError(f"classes must be two or more distinct non-negative integer labels; "
                         f"got {classes!r}")
    return array.astype(np.int64)


@deprecation.renamed_arguments(layer_reduction="pooling")
def measure_model(model, data, *, features=None, classifier=None, layers=(),
                  pooling="mean", batch_size=256, max_samples=None, ncc="exact",
                  ncc_means=None, ignore_class=None, absent_classes="nan", ood_data=None):
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
        pooling: "mean" (global average pooling of maps) or "flatten".
        ncc: "exact" (default) makes a second pass over `data` for the NCC
            mismatch against the final class means; "previous" compares
            with `ncc_means` (K, d) (e.g. an earlier checkpoint's class
            means) in the same pass, or is "exact" without them; "none"
            skips it (NaN). The same holds for the NCC accuracy of the
            features and of every layer (`ncc_means` may then be a list:
            the features' means, then each layer's).
        ignore_class: a label whose samples are left out (as in
            `keras.losses.SparseCategoricalCrossentropy`): e.g. the padding
            token of a language model. A sample weight of 0 in (x, y, w)
            data leaves a sample out too.
        absent_classes: "nan" (default: a class without samples makes the
            class-mean metrics NaN) or "skip" (measure the classes present;
            adds "num_classes_present"). See `CollapseStatistics`.
        ood_data: out-of-distribution inputs (the kinds of `data`, or an
            array of inputs; labels unused): adds "nc5" and "nc5/<name>"
            for every layer, NC5 = (1/K) sum_k |cos(mu_k, mu_OOD)| (Ammar
            et al. 2024, `formulas.nc5`), from one more pass.

    Sequence models: with (B, T, d) features (logits (B, T, K)) and labels
    (B, T), every kept position is a sample (token-level collapse).

    Returns:
        dict of Python floats keyed by `METRIC_KEYS`, the layer keys, and
        "num_samples".
    """
    ncc = check_ncc(ncc, "measure_model", stacklevel=3)  # past the renaming wrapper
    # A mixed-precision model is measured in float32 (`precision`).
    model_probe = precision.probe(model, features, classifier, layers, pooling)
    result, stats, _ = measure(model_probe, data, batch_size=batch_size,
                               max_samples=max_samples, ncc=ncc, ncc_means=ncc_means,
                               ignore_class=ignore_class, absent_classes=absent_classes,
                               ood_data=ood_data)
    result["num_samples"] = float(stats.num_samples)
    return result
