"""Many classes: the tiled metrics against whole K x K computations written
here, absent classes, per-batch cost and the tile budget's memory bound."""

import tracemalloc
import warnings

import numpy as np
import pytest

from nc_keras.collapse import CollapseStatistics, formulas, metrics, tiles

# The smallest budget: tiles of 21 to 26 classes a side, so K = 70 needs
# 3 x 3 tiles, the last ones partial.
SMALL = 2**16


def whole(Hbar, W, variances):
    """Every pairwise metric from the formed K x K matrices (no tiles)."""
    K = Hbar.shape[1]
    E = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)
    M = Hbar.T
    gram = M @ M.T
    unit = M / np.linalg.norm(M, axis=1, keepdims=True)
    cos = unit @ unit.T
    off = cos[~np.eye(K, dtype=bool)]
    k, l = np.triu_indices(K, 1)
    squared = np.diag(gram)

    def etf(A):
        return np.linalg.norm(A / np.linalg.norm(A) - E)

    return {
        "cdnv": np.mean((variances[k] + variances[l]) / (2 * (squared[k] + squared[l]
                                                              - 2 * gram[k, l]))),
        "gnc2": np.mean(-0.5 * np.log(2 - 2 * cos[k, l])),
        "means_cos_std": off.std(),
        "means_cos_max_gap": np.max(np.abs(off + 1 / (K - 1))),
        "means_etf_error": etf(gram),
        "nc2": etf(W @ W.T),
        "nc3": etf(W @ Hbar),
    }


@pytest.mark.parametrize("d", [80, 20])  # an ETF exists (d >= K - 1), and none
def test_tiled_pair_metrics_equal_whole_matrices(d):
    rng = np.random.default_rng(0)
    K = 70
    Hbar, W = rng.normal(size=(d, K)), rng.normal(size=(K, d))
    variances = rng.uniform(0.1, 1.0, size=K)
    expected = whole(Hbar, W, variances)
    with tiles.tile_budget(SMALL):
        assert tiles.pair_tile_size(K, d) < K / 2  # three tiles a side, the last partial
        got = formulas.means_pair_metrics(Hbar, variances)
        got["means_etf_error"] = formulas.means_etf_error(Hbar)
        got["nc2"], got["nc3"] = formulas.nc2(W), formulas.nc3(W, Hbar)
        lazy = tiles.Rows(Hbar.T)  # the same metrics from rows read tile by tile
        assert formulas.cdnv(lazy, variances) == pytest.approx(got["cdnv"], rel=1e-13)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-11), key


def test_nc1_by_tall_skinny_qr_equals_the_svd():
    rng = np.random.default_rng(1)
    K, d = 600, 12
    counts = rng.integers(1, 5, size=K)
    means = rng.normal(size=(K, d))
    mu_G = counts @ means / counts.sum()
    Hbar = (means - mu_G).T
    A = rng.normal(size=(d, d))
    sigma_w = A @ A.T
    expected = np.trace(sigma_w @ np.linalg.pinv(Hbar @ Hbar.T / K)) / K
    with tiles.tile_budget(SMALL):  # 2 K d 8 bytes > the budget: QR by tiles
        U, s = formulas.left_singular_vectors(tiles.Rows(means, offset=mu_G))
        value = formulas.nc1(sigma_w, tiles.Rows(means, offset=mu_G))
    np.testing.assert_allclose(s, np.linalg.svd(Hbar, compute_uv=False), rtol=1e-12)
    assert abs(np.abs(U.T @ np.linalg.svd(Hbar)[0]).diagonal() - 1).max() < 1e-10
    assert value == pytest.approx(expected, rel=1e-10)


def test_predictions_and_nearest_means_by_tiles_equal_whole_argmins():
    rng = np.random.default_rng(2)
    N, K, d = 300, 90, 5
    h = rng.normal(size=(N, d))
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    means = rng.normal(size=(K, d))
    means[[3, 50]] = np.nan  # unseen classes are never nearest
    W[7] = W[71]  # exact ties go to the smaller class, as np.argmax's
    b[7] = b[71]
    with tiles.tile_budget(SMALL):
        predicted = formulas.classifier_predictions(h, W, b)
        nearest = formulas.nearest_class_mean(h, means)
    np.testing.assert_array_equal(predicted, np.argmax(h @ W.T + b, axis=1))
    distances = ((h[:, None, :] - means[None]) ** 2).sum(-1)
    distances[np.isnan(distances)] = np.inf
    np.testing.assert_array_equal(nearest, np.argmin(distances, axis=1))


def vocabulary_batch(rng, K, d, N, present):
    """Features of N samples of the classes `present` of K, with class structure."""
    y = rng.choice(present, size=N)
    centres = rng.normal(size=(K, d))
    return centres[y] + 0.3 * rng.normal(size=(N, d)), y


def test_streaming_with_few_classes_per_batch_equals_in_memory():
    rng = np.random.default_rng(3)
    K, d = 200, 16
    H, y = vocabulary_batch(rng, K, d, 3000, np.arange(K))
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    stats = CollapseStatistics(K, tile_bytes=SMALL)
    order = np.argsort(y, kind="stable")  # batches of a few classes each
    for part in np.array_split(order, 40):
        stats.update(H[part], y[part], H[part] @ W.T + b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # K > d + 1: no ETF
        streamed, exact = stats.measure(W, b), metrics(H, y, W, b)
    for key, value in exact.items():
        if key not in ("ncc_mismatch", "ncc_accuracy"):  # a second pass when streaming
            np.testing.assert_allclose(streamed[key], value, rtol=1e-9, err_msg=key)


def test_skip_equals_measuring_the_present_classes_by_hand():
    rng = np.random.default_rng(4)
    K, d = 12, 14
    present = np.array([0, 2, 3, 5, 8, 9, 11])
    H, y = vocabulary_batch(rng, K, d, 700, present)
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    stats = CollapseStatistics(K, absent_classes="skip")
    stats.update(H, y, H @ W.T + b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "skip" warns about nothing here
        skipped = stats.measure(W, b)
        in_memory = metrics(H, y, W, b, absent_classes="skip")
    relabelled = np.searchsorted(present, y)
    by_hand = metrics(H, relabelled, W[present], b[present])
    assert skipped["num_classes_present"] == in_memory["num_classes_present"] == 7
    for key in by_hand:
        if key in ("accuracy", "ncc_mismatch"):
            continue  # predictions range over all K classes (below)
        assert in_memory[key] == pytest.approx(by_hand[key], rel=1e-9), key
        if key == "ncc_accuracy":
            continue  # streamed: needs a second pass, not made here
        assert skipped[key] == pytest.approx(by_hand[key], rel=1e-9), key
    full_argmax = np.argmax(H @ W.T + b, axis=1)
    assert skipped["accuracy"] == in_memory["accuracy"] == np.mean(full_argmax == y)
    with pytest.warns(RuntimeWarning, match=r"class\(es\) \[1, 4, 6, 7, 10\] have no sample"):
        assert np.isnan(metrics(H, y, W, b)["nc1"])  # the default: "nan"
    with pytest.raises(ValueError, match="absent_classes must be one of"):
        CollapseStatistics(K, absent_classes="drop")


def test_update_touches_only_the_classes_of_the_batch():
    K, d = 50_000, 4
    stats = CollapseStatistics(K, d)
    means_before = stats._means
    tracemalloc.start()
    try:
        stats.update(np.ones((8, d)), np.array([3, 3, 49_999, 7, 7, 7, 3, 49_999]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A K x d float64 array alone would be 1.6 MB; K-vectors (bincount) 0.4 MB.
    assert peak < 1_000_000
    assert stats._means is means_before
    np.testing.assert_array_equal(np.flatnonzero(stats.counts), [3, 7, 49_999])
    assert stats.counts.sum() == 8


def test_updates_reuse_their_scratch_and_stay_exact():
    # Batches of changing sizes reuse (and grow) the scratch arrays; the
    # result equals one in-memory pass, and the scratch is not state.
    rng = np.random.default_rng(6)
    K, d = 20, 64
    H, y = vocabulary_batch(rng, K, d, 9000, np.arange(K))
    stats = CollapseStatistics(K, d)
    bounds = [0, 4000, 4100, 8000, 8003, 9000]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        stats.update(H[start:stop], y[start:stop])
        if start == 4100:  # same size as the first batch: nothing new allocated
            tracemalloc.start()
            try:
                stats.update(H[:4000], y[:4000])
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            # A 4,000 x 64 float64 copy of the batch alone is 2 MB.
            assert peak < 500_000
    both = np.concatenate([H, H[:4000]]), np.concatenate([y, y[:4000]])
    W, b = rng.normal(size=(K, d)), rng.normal(size=K)
    exact, streamed = metrics(*both, W, b), stats.measure(W, b)
    for key in ("nc1", "cdnv", "nc2", "nc3", "means_etf_error"):
        np.testing.assert_allclose(streamed[key], exact[key], rtol=1e-10, err_msg=key)
    assert not any(key.startswith("scratch") for key in stats.get_state())
    restored = CollapseStatistics.from_state(stats.get_state())
    restored.update(H[:10], y[:10])
    stats.update(H[:10], y[:10])
    np.testing.assert_array_equal(restored.class_means, stats.class_means)


def test_measure_memory_stays_under_the_tile_budget():
    rng = np.random.default_rng(5)
    K, d, budget = 3000, 24, 4 * 2**20  # a K x K float64 array: 72 MB
    stats = CollapseStatistics(K, tile_bytes=budget)
    H, y = vocabulary_batch(rng, K, d, 2 * K, np.arange(K))
    y[:K] = np.arange(K)  # every class seen
    stats.update(H, y)
    W = rng.normal(size=(K, d))
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # K > d + 1: no ETF
            result = stats.measure(W)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(result["cdnv"]) and np.isfinite(result["nc1"])
    assert peak < budget, f"peak {peak / 2**20:.1f} MiB"
