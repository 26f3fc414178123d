"""The measurement on bad input: logits as labels, non-finite classifiers, wrong shapes, extreme scales."""

import warnings

import numpy as np
import pytest

from nc_keras.collapse import CollapseStatistics, metrics


def problem(N=300, d=9, K=4, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), N // K)
    H = 3.0 * rng.normal(size=(K, d))[y] + spread * rng.normal(size=(N, d))
    return H, y, rng.normal(size=(K, d)), rng.normal(size=K)


def streamed(H, y, logits=None, batch=37):
    stats = CollapseStatistics(int(y.max()) + 1)
    for start in range(0, len(y), batch):
        part = slice(start, start + batch)
        stats.update(H[part], y[part], None if logits is None else logits[part])
    return stats


def test_collapse_logits_passed_as_labels_are_refused():
    # Old: any float (N, K) "labels" were argmaxed into labels.
    H, y, W, b = problem()
    logits = H @ W.T + b
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for wrong in (logits, probabilities, 0.9 * np.eye(4)[y] + 0.025):
        with pytest.raises(ValueError, match="exact one-hot"):
            metrics(H, wrong, W, b)
        with pytest.raises(ValueError, match="exact one-hot"):
            CollapseStatistics(4).update(H, wrong)
    # Exact one-hot rows, float or integer, are labels.
    expected = metrics(H, y, W, b)
    for one_hot in (np.eye(4)[y], np.eye(4, dtype=np.int32)[y]):
        assert metrics(H, one_hot, W, b) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("fault", ["W", "b"])
def test_collapse_nonfinite_classifier_gives_nan_predictions_and_names_it(fault):
    # Old: accuracy and ncc_mismatch counted argmax of NaN logits (class 0),
    # and a NaN W warned "W W^T is zero".
    H, y, W, b = problem()
    if fault == "W":
        W[1, 2] = np.nan
    else:
        b[0] = np.inf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = metrics(H, y, W, b)
        streaming = streamed(H, y, H @ W.T + b)
        streaming.update_ncc(H, H @ W.T + b, streaming.class_means)
        streaming = streaming.measure(W, b)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{fault} has NaN or infinite entries") for m in messages)
    assert not any("is zero" in m for m in messages)
    for out in (result, streaming):
        for key in ("accuracy", "ncc_mismatch", "nc4"):
            assert np.isnan(out[key]), key
        assert np.isfinite(out["nc1"]) and np.isfinite(out["cdnv"])
        assert np.isnan(out["nc2"]) == (fault == "W")


@pytest.mark.parametrize("key,scale_W,scale_H", [
    ("nc2", 1e100, 1.0), ("nc3", 1e160, 1.0), ("nc3_papyan", 1e160, 1.0),
    ("nc1", 1.0, 1e-160), ("nc1", 1.0, 1e160), ("trace_ratio", 1.0, 1e160),
    ("cdnv", 1.0, 1e-160),
])
def test_collapse_scale_invariant_metrics_stay_invariant(key, scale_W, scale_H):
    # Old: W W^T overflowed to inf (NaN nc2), squares of features x 1e160
    # overflowed and of features x 1e-160 underflowed.
    H, y, W, b = problem()
    expected = metrics(H, y, W, b)[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NC4 and the logits may overflow
        in_memory = metrics(scale_H * H, y, scale_W * W)[key]
        stream = streamed(scale_H * H, y).measure(scale_W * W)[key]
    assert in_memory == pytest.approx(expected, rel=1e-10, abs=0)
    assert stream == pytest.approx(expected, rel=1e-10, abs=0)


def test_collapse_logits_of_the_wrong_shape_are_refused_by_name():
    # Old: (B, K+1) logits counted argmax over the wrong classes; (B,) raised
    # an AxisError from inside numpy.
    H, y, W, b = problem()
    stats = CollapseStatistics(4)
    for wrong in (np.zeros((len(y), 5)), np.zeros(len(y)), np.zeros((len(y) - 1, 4))):
        with pytest.raises(ValueError, match="logits must have shape"):
            stats.update(H, y, wrong)
        with pytest.raises(ValueError, match="logits must have shape"):
            stats.update_ncc(H, wrong, np.zeros((4, 9)))


@pytest.mark.parametrize("offset", [5.0, 1e6, 1e7])
def test_collapse_deep_collapse_nc1_far_from_the_origin(offset):
    # Old: running means (and in-memory class means) at ~1e6 carried a
    # round-off of eps * 1e6, of the size of the within-class spread 1e-6:
    # 1.4e-6 (streaming) and 4.6e-6 (in memory) relative error at 1e6,
    # 1e-4 at 1e7.
    rng = np.random.default_rng(7)
    K, d, pairs, eps = 4, 8, 25, 1e-6
    centres = rng.normal(size=(K, d)) + offset
    v = rng.normal(size=(K, pairs, d))
    H = (centres[:, None, :] + eps * np.concatenate([v, -v], axis=1)).reshape(-1, d)
    y = np.repeat(np.arange(K), 2 * pairs)
    # Reference: the two-pass definition in extended precision on the stored H.
    Hx = H.astype(np.longdouble)
    M = np.stack([Hx[y == k].mean(axis=0) for k in range(K)])
    centred = Hx - M[y]
    sigma_w = np.asarray(centred.T @ centred / len(y), dtype=np.float64)
    Hbar = np.asarray(M - Hx.mean(axis=0), dtype=np.float64)
    exact = np.trace(sigma_w @ np.linalg.pinv(Hbar.T @ Hbar / K, rcond=1e-10,
                                              hermitian=True)) / K
    order = rng.permutation(len(y))  # classes mixed across batches
    W = rng.normal(size=(K, d))
    stream = streamed(H[order], y[order], batch=16).measure(W)["nc1"]
    assert stream == pytest.approx(exact, rel=1e-8, abs=0)
    assert metrics(H, y, W)["nc1"] == pytest.approx(exact, rel=1e-8, abs=0)


def test_collapse_num_classes_must_be_an_integer():
    # Old: CollapseStatistics(2.7) measured 2 classes. A whole number written
    # as a float is K, as everywhere else (nc_keras.validation).
    for wrong in (2.7, "3", float("nan"), True):
        with pytest.raises(ValueError, match="num_classes must be an integer"):
            CollapseStatistics(wrong)
    assert CollapseStatistics(np.int64(3)).num_classes == 3
    assert CollapseStatistics(3.0).num_classes == 3


def test_small_float_labels_message_states_the_rule():
    h = np.random.default_rng(0).normal(size=(4, 3))
    stats = CollapseStatistics(3)
    stats.update(h, np.array([0.0, 1.0, 2.0, 1.0], np.float32))  # whole numbers: accepted
    assert stats.num_samples == 4
    with pytest.raises(ValueError, match=r"^labels must be whole numbers \(integers, or floats such as 2\.0\); "
                                         r"got dtype float32 with 2 other value\(s\), e\.g\. \[0\.5, nan\]$"):
        stats.update(h, np.array([0.0, 0.5, np.nan, 1.0], np.float32))
