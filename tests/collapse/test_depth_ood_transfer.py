"""Collapse through depth (NCC accuracy, rank), against OOD data (NC5, NECO)
and on held-out classes (transfer_cdnv), each against a by-hand NumPy computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nc_keras import collapse
from nc_keras.callbacks import NeuralCollapse
from nc_keras.collapse import CollapseStatistics, formulas, metrics

K = 4


def model_and_data(num_classes=K, n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (np.arange(n) % num_classes).astype("int32")
    x[:, :num_classes] += 3.0 * np.eye(num_classes, dtype="float32")[y]  # separable-ish
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(10, activation="tanh", name="hidden")(inputs)
    h = keras.layers.Dense(7, activation="relu", name="features")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, name="classifier")(h))
    return model, x, y


def outputs(model, name, x):
    return keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer(name).output)(x))


def nearest(h, means):
    return np.argmin(((h[:, None, :] - means[None]) ** 2).sum(-1), axis=1)


def spectrum_by_hand(h):
    """Eigenvalues of the covariance of the centred features, from an SVD."""
    return np.linalg.svd(h - h.mean(0), compute_uv=False) ** 2 / len(h)


def test_ranks_count_the_directions_above_the_stated_threshold():
    rng = np.random.default_rng(1)
    # Variances relative to the largest: 1, 0.25, 0.01 (counted), 2.5e-5 and
    # below (not counted at the threshold 1e-3).
    scales = np.array([10.0, 5.0, 1.0, 0.05, 0.01, 1e-3])
    y = np.arange(600) % 3
    H = rng.normal(size=(600, 6)) * scales + 40.0  # far from the origin
    spectrum = spectrum_by_hand(H)
    rank_by_hand = int(np.sum(spectrum > 1e-3 * spectrum.max()))
    p = spectrum / spectrum.sum()
    assert rank_by_hand == 3 and formulas.RANK_RTOL == 1e-3
    stats = CollapseStatistics(3)
    for part in np.array_split(np.arange(600), 7):
        stats.update(H[part], y[part])
    for result in (stats.measure(), metrics(H, y, rng.normal(size=(3, 6)))):
        assert result["numerical_rank"] == rank_by_hand
        assert result["effective_rank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-9)
    np.testing.assert_allclose(stats.covariance(), np.cov(H.T, bias=True), rtol=1e-9, atol=1e-12)
    # Isotropic features: effective rank d; one direction: 1.
    assert formulas.effective_rank(np.ones(5)) == pytest.approx(5.0)
    assert formulas.effective_rank(np.array([2.0, 0, 0])) == 1.0
    assert formulas.numerical_rank(np.zeros(4)) == 0.0


def test_layer_ncc_accuracy_exact_and_against_given_means():
    model, x, y = model_and_data()
    result = collapse.measure_model(model, (x, y), layers=["hidden"], batch_size=32)
    for key, name in (("ncc_accuracy", "features"), ("ncc_accuracy/hidden", "hidden")):
        h = outputs(model, name, x)
        means = np.stack([h[y == k].mean(0) for k in range(K)])
        assert result[key] == np.mean(nearest(h, means) == y), key
        rank = formulas.numerical_rank(spectrum_by_hand(h))
        assert result[key.replace("ncc_accuracy", "numerical_rank")] == rank
    # "previous": against the means given for each output, in one pass.
    rng = np.random.default_rng(2)
    given = [rng.normal(size=(K, 7)), rng.normal(size=(K, 10))]
    previous = collapse.measure_model(model, (x, y), layers=["hidden"], ncc="previous",
                                      ncc_means=given)
    assert previous["ncc_accuracy"] == np.mean(nearest(outputs(model, "features", x), given[0]) == y)
    assert previous["ncc_accuracy/hidden"] == np.mean(
        nearest(outputs(model, "hidden", x), given[1]) == y)
    none = collapse.measure_model(model, (x, y), layers=["hidden"], ncc="none")
    assert np.isnan(none["ncc_accuracy"]) and np.isnan(none["ncc_accuracy/hidden"])


def test_nc5_of_measure_model_equals_the_mean_absolute_cosine():
    model, x, y = model_and_data()
    x_ood = np.random.default_rng(3).uniform(-4, 4, size=(50, 6)).astype("float32")
    ood_kinds = [x_ood, (x_ood, np.zeros(50, "int32")),
                 tf.data.Dataset.from_tensor_slices((x_ood, np.zeros(50))).batch(16)]
    for ood in ood_kinds:
        result = collapse.measure_model(model, (x, y), layers=["hidden"], ood_data=ood, ncc="none")
        for key, name in (("nc5", "features"), ("nc5/hidden", "hidden")):
            h, g = outputs(model, name, x), outputs(model, name, x_ood).mean(0)
            means = np.stack([h[y == k].mean(0) for k in range(K)])
            cosines = means @ g / (np.linalg.norm(means, axis=1) * np.linalg.norm(g))
            assert result[key] == pytest.approx(np.mean(np.abs(cosines)), rel=1e-5), key
    assert "nc5" not in collapse.measure_model(model, (x, y), ncc="none")
    # A wrong kind of OOD data fails before any training or pass.
    with pytest.raises(ValueError, match="ood_data must be an array of inputs"):
        NeuralCollapse((x, y), ood_data={"x": x_ood})
    with pytest.raises(ValueError, match="ood_data must be an array of inputs"):
        collapse.measure_model(model, (x, y), ood_data="ood.npz", ncc="none")
    # Orthogonal OOD mean: 0; a class mean along it: 1/K of the classes count 1.
    means = np.eye(4, 5)
    assert formulas.nc5(means, np.array([0, 0, 0, 0, 2.0])) == 0.0
    assert formulas.nc5(means, np.array([3.0, 0, 0, 0, 0])) == pytest.approx(0.25)


def test_neco_scores_and_auroc_by_hand():
    model, x, y = model_and_data()
    x_ood = np.random.default_rng(4).normal(size=(40, 6)).astype("float32") * 3
    h_id, h_ood = outputs(model, "features", x), outputs(model, "features", x_ood)
    for center in (False, True):
        neco = collapse.NECO(model, (x, y), num_directions=2, center=center, batch_size=50)
        values, vectors = np.linalg.eigh(np.cov(h_id.T, bias=True))
        P = vectors[:, ::-1][:, :2]
        c = h_id.mean(0) if center else 0.0
        for h, data in ((h_id, x), (h_ood, x_ood)):
            expected = np.linalg.norm((h - c) @ P, axis=1) / np.linalg.norm(h - c, axis=1)
            np.testing.assert_allclose(neco(data), expected, rtol=1e-5)
    assert neco.components.shape == (7, 2)
    assert collapse.NECO(model, (x, y)).components.shape == (7, K - 1)
    scores_in = np.array([0.9, 0.8, 0.5, 0.5])
    scores_out = np.array([0.5, 0.1, 0.7])
    pairs = [(a > b) + 0.5 * (a == b) for a in scores_in for b in scores_out]
    assert collapse.auroc(scores_in, scores_out) == pytest.approx(np.mean(pairs))
    assert collapse.auroc([2.0, 3.0], [0.0, 1.0]) == 1.0
    with pytest.raises(ValueError, match="finite"):
        collapse.auroc([np.nan], [1.0])


def test_transfer_cdnv_and_few_shot_accuracy_by_hand():
    model, x, y = model_and_data(num_classes=6, n=150)
    held_out = [5, 1, 3]
    result = collapse.transfer_cdnv(model, (x, y), held_out, shots=4, layers=["hidden"],
                                    batch_size=32)
    keep = np.isin(y, held_out)
    labels = np.array([held_out.index(v) for v in y[keep]])  # 5 -> 0, 1 -> 1, 3 -> 2
    for prefix, name in (("", "features"), ("/hidden", "hidden")):
        h = outputs(model, name, x)[keep].astype(np.float64)
        means = np.stack([h[labels == c].mean(0) for c in range(3)])
        var = [np.mean(np.sum((h[labels == c] - means[c]) ** 2, axis=1)) for c in range(3)]
        cdnv = np.mean([(var[a] + var[b]) / (2 * np.sum((means[a] - means[b]) ** 2))
                        for a in range(3) for b in range(a + 1, 3)])
        assert result["cdnv" + prefix] == pytest.approx(cdnv, rel=1e-6)
        assert result["ncc_accuracy" + prefix] == np.mean(nearest(h, means) == labels)
    h = outputs(model, "features", x)[keep].astype(np.float64)
    rank = np.array([np.sum(labels[:i] == labels[i]) for i in range(len(labels))])
    centres = np.stack([h[(labels == c) & (rank < 4)].mean(0) for c in range(3)])
    query = rank >= 4
    assert result["few_shot_accuracy"] == np.mean(nearest(h[query], centres) == labels[query])
    assert result["num_samples"] == keep.sum() and result["num_classes"] == 3
    assert "nc2" not in result and "accuracy" not in result
    # The same from a tf.data pipeline with (N, 1) labels, in batches of another size.
    batches = tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(23)
    again = collapse.transfer_cdnv(model, batches, held_out, shots=4, layers=["hidden"])
    for key, value in result.items():
        assert again[key] == pytest.approx(value, rel=1e-6), key
    with pytest.raises(ValueError, match="no sample"):
        collapse.transfer_cdnv(model, (x, y), [1, 9])
    with pytest.raises(ValueError, match="shots"):
        collapse.transfer_cdnv(model, (x, y), [1, 3], shots=25)
    with pytest.raises(ValueError, match="distinct"):
        collapse.transfer_cdnv(model, (x, y), [1, 1])
