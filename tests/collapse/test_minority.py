"""Minority-collapse metrics (Fang et al. 2021) against a direct NumPy computation."""

import itertools
import warnings

import numpy as np
import pytest

from nc_keras import collapse
from nc_keras.collapse import formulas


def test_minority_cosine_is_the_mean_pairwise_cosine():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 4))
    minority = [1, 3, 4, 5]
    direct = np.mean([
        W[k] @ W[l] / (np.linalg.norm(W[k]) * np.linalg.norm(W[l]))
        for k, l in itertools.combinations(minority, 2)
    ])  # fmt: skip
    assert formulas.minority_cosine(W, minority) == pytest.approx(direct, rel=1e-12)
    # A simplex ETF: every pair at -1/(K-1); collapsed rows: 1.
    etf = np.eye(5) - 1 / 5
    assert formulas.minority_cosine(etf, [2, 3, 4]) == pytest.approx(-1 / 4)
    assert formulas.minority_cosine(np.ones((3, 2)), [0, 2]) == pytest.approx(1.0)
    with pytest.warns(RuntimeWarning, match="two or more"):
        assert np.isnan(formulas.minority_cosine(W, [2]))


def test_minority_accuracy_is_the_mean_per_class_accuracy():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 200)
    predicted = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 5, 200))
    minority = [2, 4]
    direct = np.mean([np.mean(predicted[labels == k] == k) for k in minority])
    correct = np.bincount(labels[predicted == labels], minlength=5)
    counts = np.bincount(labels, minlength=5)
    assert formulas.minority_accuracy(correct, counts, minority) == pytest.approx(direct, rel=1e-12)
    # A class with no sample is left out.
    assert formulas.minority_accuracy([3, 0], [4, 0], [0, 1]) == pytest.approx(0.75)


def test_result_dicts_have_the_minority_keys_only_when_asked():
    rng = np.random.default_rng(2)
    K, d = 4, 6
    labels = np.repeat(np.arange(K), [40, 30, 10, 5])
    features = rng.standard_normal((len(labels), d)) + 3 * np.eye(K, d)[labels]
    W, b = rng.standard_normal((K, d)), rng.standard_normal(K)
    plain = collapse.metrics(features, labels, W, b)
    assert set(plain) == set(collapse.METRIC_KEYS)
    result = collapse.metrics(features, labels, W, b, minority_classes=[2, 3])
    assert set(result) == set(collapse.METRIC_KEYS) | set(collapse.MINORITY_KEYS)
    predicted = np.argmax(features @ W.T + b, axis=1)
    direct = np.mean([np.mean(predicted[labels == k] == k) for k in (2, 3)])
    assert result["minority_accuracy"] == pytest.approx(direct)
    assert result["minority_cosine"] == pytest.approx(formulas.minority_cosine(W, [2, 3]))

    # Streamed in batches and merged across shards: the same numbers.
    halves = [collapse.CollapseStatistics(K) for _ in range(2)]
    for part, stats in zip(np.array_split(np.arange(len(labels)), 2), halves):
        stats.update(features[part], labels[part], features[part] @ W.T + b)
    merged = collapse.CollapseStatistics.from_state(halves[0].get_state()).merge(halves[1])
    streamed = collapse.minority_metrics(merged, W, [2, 3])
    assert streamed["minority_accuracy"] == pytest.approx(direct)
    with pytest.raises(ValueError, match="class indices"):
        collapse.minority_metrics(merged, W, [4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collapse.metrics(features, labels, W, b, minority_classes=[0, 1, 2, 3])
