"""nc_keras.collapse.statistics (streaming and in memory) against an independent,
straightforward float64 computation."""

import warnings

import keras
import numpy as np
import pytest

from nc_keras import collapse
from nc_keras.collapse import CollapseStatistics, metrics

RTOL = 1e-8


def reference(H, y, W, b=None):
    """Two-pass float64 NumPy, straight from the definitions of Sec. 4 (no shared code)."""
    K, N = W.shape[0], len(y)
    b = np.zeros(K) if b is None else b
    M = np.stack([H[y == k].mean(axis=0) for k in range(K)])
    G = H.mean(axis=0)
    Sw = sum(np.outer(h - M[k], h - M[k]) for h, k in zip(H, y)) / N
    Hbar = (M - G).T
    Sb = Hbar @ Hbar.T / K
    rank = min(K - 1, H.shape[1])
    eigval, eigvec = np.linalg.eigh(Sb)
    eigval, eigvec = eigval[-rank:], eigvec[:, -rank:]
    Sb_pinv = eigvec @ np.diag(1 / eigval) @ eigvec.T
    E = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)

    def etf(A):
        return np.linalg.norm(A / np.linalg.norm(A) - E)

    logits = H @ W.T + b
    nearest = np.argmin(((H[:, None, :] - M[None]) ** 2).sum(-1), axis=1)
    norms = np.linalg.norm(Hbar, axis=0)
    wnorms = np.linalg.norm(W, axis=1)
    # The metrics beyond the paper, straight from their definitions.
    pairs = [(k, l) for k in range(K) for l in range(k + 1, K)]
    sigma2 = [np.mean(np.sum((H[y == k] - M[k]) ** 2, axis=1)) for k in range(K)]
    m = [(M[k] - G) / np.linalg.norm(M[k] - G) for k in range(K)]
    off = np.array([m[k] @ m[l] for k in range(K) for l in range(K) if k != l])
    cos_w = np.array([W[k] @ (M[k] - G) / (np.linalg.norm(W[k]) * np.linalg.norm(M[k] - G))
                      for k in range(K)])
    # The covariance of the centred features, from its singular values.
    spectrum = np.linalg.svd(H - G, compute_uv=False) ** 2 / N
    p = spectrum / spectrum.sum()
    return {
        "ncc_accuracy": np.mean(nearest == y),
        "numerical_rank": np.sum(spectrum > 1e-3 * spectrum.max()),
        "effective_rank": np.exp(-np.sum(p * np.log(p))),
        "nc1": np.trace(Sw @ Sb_pinv) / K,
        "nc2": etf(W @ W.T),
        "nc3": etf(W @ Hbar),
        "nc4": np.linalg.norm(b + W @ G),
        "ncc_mismatch": np.mean(nearest != logits.argmax(1)),
        "accuracy": np.mean(logits.argmax(1) == y),
        "means_etf_error": etf(Hbar.T @ Hbar),
        "means_norm_cv": norms.std() / norms.mean(),
        "classifier_norm_cv": wnorms.std() / wnorms.mean(),
        "trace_ratio": np.trace(Sw) / np.trace(Sb),
        "cdnv": np.mean([(sigma2[k] + sigma2[l]) / (2 * np.sum((M[k] - M[l]) ** 2))
                         for k, l in pairs]),
        "means_cos_std": off.std(),
        "means_cos_max_gap": np.max(np.abs(off + 1 / (K - 1))),
        "gnc2": np.mean([np.log(1 / np.linalg.norm(m[k] - m[l])) for k, l in pairs]),
        "unc3": cos_w.std() / abs(cos_w.mean()),
        "nc3_papyan": np.linalg.norm(W.T / np.linalg.norm(W) - Hbar / np.linalg.norm(Hbar)),
    }


ETF_KEYS = ("nc2", "nc3", "means_etf_error", "means_cos_max_gap")


def random_problem(N=400, d=12, K=5, seed=0, spread=1.0, offset=0.0, imbalanced=True):
    rng = np.random.default_rng(seed)
    if imbalanced:
        # Class k has roughly (k + 1) times as many samples as class 0.
        p = np.arange(1, K + 1, dtype=float)
        y = rng.choice(K, size=N, p=p / p.sum())
    else:
        y = np.repeat(np.arange(K), N // K)
    centres = rng.normal(size=(K, d)) + offset
    H = centres[y] + spread * rng.normal(size=(N, d))
    W = rng.normal(size=(K, d))
    b = rng.normal(size=K)
    return H, y, W, b


def assert_close(result, expected, rtol=RTOL, keys=None):
    for key in keys or expected:
        assert result[key] == pytest.approx(expected[key], rel=rtol, abs=1e-300), key


@pytest.mark.parametrize("with_bias", [True, False])
def test_metrics_match_reference_imbalanced(with_bias):
    H, y, W, b = random_problem()
    b = b if with_bias else None
    result = metrics(H, y, W, b)
    assert set(collapse.METRIC_KEYS) <= set(result)
    assert all(type(v) is float for v in result.values())
    assert np.bincount(y).min() < np.bincount(y).max() / 2  # really imbalanced
    assert_close(result, reference(H, y, W, b))


@pytest.mark.parametrize("K,d", [(80, 16), (5, 3), (5, 4), (3, 30)])
def test_streaming_batches_match_reference(K, d):
    # K=80 takes the sorting path for class sums; d=3 < K-1 caps the rank at d.
    H, y, W, b = random_problem(N=50 * K, d=d, K=K, seed=K)
    stats = CollapseStatistics(K)
    for start in range(0, len(y), 37):
        part = slice(start, start + 37)
        stats.update(H[part], y[part], H[part] @ W.T + b)
    for start in range(0, len(y), 50):  # second pass, as measure_model does
        part = slice(start, start + 50)
        stats.update_ncc(H[part], H[part] @ W.T + b, stats.class_means, labels=y[part])
    expected = reference(H, y, W, b)
    if K <= d + 1:
        assert_close(stats.measure(W, b), expected)
        return
    # No simplex ETF fits: its distances are NaN, with one warning saying why.
    with pytest.warns(RuntimeWarning) as caught:
        result = stats.measure(W, b)
    assert len(caught) == 1 and "no simplex ETF exists" in str(caught[0].message)
    assert all(np.isnan(result[key]) for key in ETF_KEYS)
    assert_close(result, expected, keys=[key for key in expected if key not in ETF_KEYS])


@pytest.mark.parametrize("spread", [1.0, 1e-4])
def test_new_metrics_match_reference_random_and_nearly_collapsed(spread):
    # spread=1e-4: within-class spread 1e-4 of the between-class one.
    H, y, W, b = random_problem(N=300, d=9, K=6, seed=4, spread=spread)
    keys = ["cdnv", "means_cos_std", "means_cos_max_gap", "gnc2", "unc3", "nc3_papyan"]
    expected = reference(H, y, W, b)
    assert_close(metrics(H, y, W, b), expected, keys=keys)
    stats = CollapseStatistics(6)
    for start in range(0, len(y), 29):
        stats.update(H[start:start + 29], y[start:start + 29])
    assert_close(stats.measure(W, b), expected, keys=keys)
    if spread < 1:
        assert expected["cdnv"] < 1e-6


def test_merge_of_shards_equals_one_pass(tmp_path):
    H, y, W, b = random_problem(N=300, seed=3)
    whole = CollapseStatistics(5).update(H, y)
    shards = [CollapseStatistics(5) for _ in range(3)]
    # Uneven shards; shard 2 sees only some classes.
    bounds = [(0, 17), (17, 140), (140, 300)]
    for shard, (lo, hi) in zip(shards, bounds):
        for start in range(lo, hi, 23):
            shard.update(H[start:min(start + 23, hi)], y[start:min(start + 23, hi)])
    # One shard travels through an .npz file, as from another host.
    np.savez(tmp_path / "shard.npz", **shards[1].get_state())
    with np.load(tmp_path / "shard.npz") as npz:
        shards[1] = CollapseStatistics.from_state(npz)
    merged = CollapseStatistics(5).merge(shards[0]).merge(shards[1]).merge(shards[2])
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.means, whole.means, rtol=1e-12)
    np.testing.assert_allclose(merged.scatter, whole.scatter, rtol=1e-11, atol=1e-11)
    assert_close(merged.measure(W, b), whole.measure(W, b), rtol=1e-10,
                 keys=["nc1", "nc3", "nc4", "trace_ratio"])


def test_deep_collapse_nc1_keeps_relative_accuracy():
    rng = np.random.default_rng(7)
    K, d, pairs, eps = 4, 8, 25, 1e-6
    centres = rng.normal(size=(K, d)) + 5.0  # far from the origin, too
    v = rng.normal(size=(K, pairs, d))
    # +-v pairs: each class mean is exactly its centre, Sigma_W exactly known.
    z = np.concatenate([v, -v], axis=1)
    H = (centres[:, None, :] + eps * z).reshape(-1, d)
    y = np.repeat(np.arange(K), 2 * pairs)
    N = len(y)
    sigma_w = eps**2 * np.einsum("kni,knj->ij", z, z) / N
    G = centres.mean(axis=0)
    Sb = (centres - G).T @ (centres - G) / K
    exact = np.trace(sigma_w @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True)) / K
    assert exact < 1e-10

    stats = CollapseStatistics(K)
    order = rng.permutation(N)  # classes mixed across batches
    for start in range(0, N, 16):
        stats.update(H[order[start:start + 16]], y[order[start:start + 16]])
    W = rng.normal(size=(K, d))
    assert stats.measure(W)["nc1"] == pytest.approx(exact, rel=1e-6, abs=0)
    assert metrics(H, y, W)["nc1"] == pytest.approx(exact, rel=1e-6, abs=0)

    # The test has teeth: raw second moments lose the within-class scatter.
    raw = H.T @ H - sum(
        np.sum(y == k) * np.outer(H[y == k].mean(0), H[y == k].mean(0)) for k in range(K)
    )
    naive = np.trace(raw / N @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True)) / K
    assert abs(naive - exact) > 1e-3 * exact


def test_exact_simplex_etf_gives_zero_nc2_nc3():
    K, d, n = 6, 9, 4
    M = np.sqrt(K / (K - 1)) * (np.eye(K) - np.ones((K, K)) / K)  # K x K ETF
    P = np.linalg.qr(np.random.default_rng(1).normal(size=(d, K)))[0]
    W = 2.5 * M @ P.T  # rows: a rotated simplex ETF
    H = np.repeat(0.7 * W, n, axis=0) + 3.0  # collapsed, with a global offset
    y = np.repeat(np.arange(K), n)
    b = -W @ np.full(d, 3.0)
    result = metrics(H, y, W, b)
    for key in ("nc1", "nc2", "nc3", "nc4", "means_etf_error", "means_norm_cv",
                "classifier_norm_cv", "ncc_mismatch", "trace_ratio"):
        assert abs(result[key]) < 1e-12, key
    assert result["accuracy"] == 1.0


def test_backend_tensors_and_label_shapes():
    H, y, W, b = random_problem(N=120, seed=5)
    expected = metrics(H, y, W, b)
    tensors = [keras.ops.convert_to_tensor(a) for a in (H, y, W, b)]
    # JAX (without x64) and others may store float32: compare like with like.
    as_numpy = [keras.ops.convert_to_numpy(t) for t in tensors]
    assert_close(metrics(*tensors), metrics(*as_numpy))
    assert_close(metrics(H.astype(np.float32), y, W, b), metrics(
        H.astype(np.float32).astype(np.float64), y, W, b))
    assert_close(metrics(H, y[:, None], W, b), expected)
    assert_close(metrics(H, np.eye(5)[y], W, b), expected)
    assert_close(metrics(H, y.astype(float), W, b), expected)


def test_labels_outside_range_raise():
    H, y, W, b = random_problem(N=50)
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        metrics(H, np.where(y == 0, 5, y), W, b)
    with pytest.raises(ValueError, match="outside"):
        metrics(H, y - 1, W, b)
    with pytest.raises(ValueError, match="integers"):
        metrics(H, y + 0.5, W, b)
    with pytest.raises(ValueError, match="rows"):
        metrics(H[:-1], y, W, b)


def test_empty_class_warns_and_gives_nan_for_class_mean_metrics():
    H, y, W, b = random_problem(N=200)
    keep = y != 2
    with pytest.warns(RuntimeWarning, match=r"class\(es\) \[2\] have no sample"):
        result = metrics(H[keep], y[keep], W, b)
    for key in ("nc1", "nc3", "ncc_mismatch", "means_etf_error", "trace_ratio"):
        assert np.isnan(result[key]), key
    assert result["nc2"] == pytest.approx(reference(H, y, W, b)["nc2"], rel=RTOL)
    assert result["nc4"] == pytest.approx(np.linalg.norm(b + W @ H[keep].mean(0)), rel=RTOL)


def test_no_samples_and_no_classifier_warn_and_give_nan():
    # An intermediate layer measured on empty data: no W, no feature width.
    with pytest.warns(RuntimeWarning, match="no samples"):
        result = CollapseStatistics(10).measure()
    assert all(np.isnan(result[key]) for key in collapse.METRIC_KEYS)


def test_nonfinite_features_warn_and_give_nan():
    H, y, W, b = random_problem(N=200)
    H[3, 1] = np.nan
    H[10, 0] = np.inf
    with pytest.warns(RuntimeWarning, match="2 sample"):
        result = metrics(H, y, W, b)
    for key in ("nc1", "nc3", "nc4", "ncc_mismatch", "trace_ratio"):
        assert np.isnan(result[key]), key
    assert np.isfinite(result["nc2"])


def test_degenerate_inputs_are_nan_not_zero():
    H, y, W, b = random_problem(N=100)
    with pytest.warns(RuntimeWarning, match="W Hbar is zero"), \
            pytest.warns(RuntimeWarning, match="W W\\^T is zero"), \
            pytest.warns(RuntimeWarning, match="W is zero: Papyan"):
        result = metrics(H, y, np.zeros_like(W))
    for key in ("nc2", "nc3", "nc3_papyan", "unc3", "classifier_norm_cv"):
        assert np.isnan(result[key]), key
    same_means = H - np.stack([H[y == k].mean(0) for k in range(5)])[y] + 1.0
    with pytest.warns(RuntimeWarning, match="Sigma_B = 0"):
        result = metrics(same_means, y, W, b)
    # Equal means up to round-off must not give huge or tiny numbers.
    for key in ("nc1", "nc3", "means_etf_error", "means_norm_cv", "trace_ratio", "cdnv",
                "means_cos_std", "means_cos_max_gap", "gnc2", "unc3", "nc3_papyan"):
        assert np.isnan(result[key]), key


def test_no_warnings_on_clean_input():
    H, y, W, b = random_problem(N=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics(H, y, W, b)
        metrics(H, y, W, None, num_classes=5)


def test_sigma_b_pseudo_inverse_keeps_rank_k_minus_1():
    # Imbalanced classes: Hbar's null vector is the counts, not the ones vector.
    H, y, W, b = random_problem(N=300, d=7, K=6, seed=11)
    K = 6
    M = np.stack([H[y == k].mean(0) for k in range(K)])
    Hbar = (M - H.mean(0)).T
    Sb = Hbar @ Hbar.T / K
    Hc = H - M[y]
    Sw = Hc.T @ Hc / len(y)
    assert np.linalg.matrix_rank(Sb) == K - 1
    full = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-300, hermitian=True)) / K
    eigval, eigvec = np.linalg.eigh(Sb)
    top = eigvec[:, -(K - 1):] / eigval[-(K - 1):] @ eigvec[:, -(K - 1):].T
    expected = np.trace(Sw @ top) / K
    assert metrics(H, y, W, b)["nc1"] == pytest.approx(expected, rel=RTOL)
    assert abs(full - expected) > 1e3 * expected  # inverting round-off is wrong
