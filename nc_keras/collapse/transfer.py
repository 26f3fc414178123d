"""Collapse on held-out classes: `transfer_cdnv`.

Galanti, Gyorgy & Hutter (ICLR 2022, "On the role of neural collapse in
transfer learning") train a network on some classes and measure the
class-distance normalized variance (CDNV, `formulas.cdnv`) of classes it
never saw, in its penultimate features: a small CDNV of the new classes
bounds the error of the nearest-class-centre classifier built from a few
samples of each (their Prop. 5). `transfer_cdnv` measures both: the
feature-only metrics of the held-out classes (CDNV, NC1, NCC accuracy,
ranks, ...) and the few-shot NCC accuracy.
"""

import warnings

import numpy as np

from nc_keras.collapse import formulas, passes, probes
from nc_keras.collapse.statistics import FEATURE_ONLY_KEYS

__all__ = ["transfer_cdnv"]


def transfer_cdnv(model, data, classes, *, shots=5, features=None, classifier=None,
                  layers=(), pooling="mean", batch_size=256, max_samples=None):
    """CDNV and few-shot NCC accuracy of classes the model was not trained on.

    Only the samples of `data` labelled one of `classes` are used, as
    classes 0..m-1 in the order given (the classifier has no row for them,
    so nothing of W is measured). With the class means mu_c and variances
    sigma_c^2 = (1/n_c) sum_i ||h_ci - mu_c||^2 of the held-out classes,

        CDNV = mean_{c<c'} (sigma_c^2 + sigma_c'^2) / (2 ||mu_c - mu_c'||^2)

    (Galanti et al., ICLR 2022), and the few-shot accuracy is that
    of the nearest-class-centre classifier whose centres are the means of
    the first `shots` samples of each class in `data`'s order (the support
    set: no random draw), on all the other samples (the queries).

    Args:
        model: a trained Keras model (any `nc_keras.collapse.probes.probe` finds).
        data: (x, y) arrays, a tf.data.Dataset or a keras.utils.PyDataset
            with integer labels, holding the held-out classes (other labels
            are skipped).
        classes: two or more held-out class labels.
        shots: support samples per class for the few-shot accuracy (None: not
            measured); every class needs more than `shots` samples.
        features, classifier, layers, pooling: as `measure_model`; each layer
            adds its metrics as "cdnv/<name>", ...
        batch_size, max_samples: as `measure_model`.
    Returns:
        dict of floats: the `FEATURE_ONLY_KEYS` of the held-out classes
        ("cdnv", "nc1", "ncc_accuracy" with all samples' means, ...), the
        layers' under "<key>/<name>", "few_shot_accuracy" (NaN without
        `shots`), "num_samples" and "num_classes".
    """
    probe = probes.probe(model, features, classifier, layers, pooling)
    classes = passes._check_classes(classes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, stats, _ = passes.measure(probe, data, batch_size=batch_size,
                                          max_samples=max_samples, ncc="exact", classes=classes)
    missing = np.flatnonzero(stats.counts == 0)
    if missing.size:  # the warnings would name the classes by their index in `classes`
        raise ValueError(f"classes {classes[missing].tolist()} have no sample in the data")
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    measured = set(FEATURE_ONLY_KEYS) | {key for key in result if "/" in key}
    out = {key: value for key, value in result.items() if key in measured}
    out["few_shot_accuracy"] = float("nan")
    if shots is not None:
        out["few_shot_accuracy"] = _few_shot_accuracy(
            probe, data, classes, int(shots), stats.counts, batch_size, max_samples)
    out["num_samples"] = float(stats.num_samples)
    out["num_classes"] = float(len(classes))
    return out


def _few_shot_accuracy(probe, data, classes, shots, counts, batch_size, max_samples):
    """NCC accuracy on the queries, with the first `shots` samples per class as centres."""
    if shots < 1 or counts.min() <= shots:
        raise ValueError(f"shots must be at least 1 and below every held-out class's sample "
                         f"count (the smallest is {int(counts.min())}); got {shots}")
    predictor = probe.predictor()
    if predictor.process_count > 1:
        raise ValueError("the few-shot accuracy is measured in one process: pass shots=None")
    options = (batch_size, max_samples, None, classes)
    m = len(classes)
    taken, sums = np.zeros(m, dtype=np.int64), None
    # Support pass: stops once every class has its `shots` samples.
    for outputs, y in passes._chunks(predictor, data, *options):
        h = outputs[0].astype(np.float64)
        if sums is None:
            sums = np.zeros((m, h.shape[1]))
        rank = _rank_in_class(y, taken, m)
        support = rank < shots
        np.add.at(sums, y[support], h[support])
        taken += np.bincount(y, minlength=m)
        if (taken >= shots).all():
            break
    centres = sums / shots
    seen, correct, queries = np.zeros(m, dtype=np.int64), 0, 0
    for outputs, y in passes._chunks(predictor, data, *options):
        query = _rank_in_class(y, seen, m) >= shots
        seen += np.bincount(y, minlength=m)
        nearest = formulas.nearest_class_mean(outputs[0][query].astype(np.float64), centres)
        correct += int((nearest == y[query]).sum())
        queries += int(query.sum())
    return correct / queries


def _rank_in_class(y, before, num_classes):
    """Each sample's position among its class's samples so far (0-based), given `before` (m,)."""
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=num_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(y), dtype=np.int64)
    rank[order] = np.arange(len(y)) - np.repeat(starts, counts)
    return rank + before[y]
