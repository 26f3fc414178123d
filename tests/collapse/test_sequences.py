"""Token-level collapse: (B, T, K) logits, ignore_class, zero sample weights,
tied heads, against flattening and masking by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nc_keras import collapse

K, T, D = 5, 7, 6


def language_model(tied=False):
    """Tokens (B, T) -> features (B, T, D) -> logits (B, T, K) at every position."""
    tokens = keras.Input((T,), dtype="int32")
    embedding = keras.layers.Embedding(K, D, name="tokens")
    h = keras.layers.Dense(D, activation="tanh", name="mix")(embedding(tokens))
    h = keras.layers.LayerNormalization(name="final")(h)
    if tied:
        logits = TiedHead(embedding)(h)
    else:
        logits = keras.layers.Dense(K, name="classifier")(h)
    return keras.Model(tokens, logits)


class TiedHead(keras.layers.Layer):
    """logits = h E^T for the token embedding E (K, D)."""

    def __init__(self, embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding

    def call(self, h):
        return keras.ops.matmul(h, keras.ops.transpose(self.embedding.embeddings))


def outputs_of(model, name, x):
    return keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer(name).output)(x, training=False))


# float32 features from two compiled paths (the extractor, a direct call) differ
# by float32 round-off, so the metrics agree to about 1e-6, not to 1e-15.
def by_hand(model, x, y, keep, W, b=None):
    """Every position a sample: flatten (B, T, D) to (B T, D), then mask."""
    h = outputs_of(model, "final", x).reshape(-1, D)
    return collapse.metrics(h[keep], y.reshape(-1)[keep], W, b)


@pytest.fixture
def tokens():
    rng = np.random.default_rng(0)
    x = rng.integers(0, K, size=(40, T)).astype("int32")
    y = np.roll(x, -1, axis=1)  # the next token
    y[:, -1] = -1  # no next token: padding, ignored
    weights = (rng.uniform(size=(40, T)) > 0.2).astype("float32")
    return x, y, weights


def test_token_level_with_ignore_class_and_zero_weights_equals_masking_by_hand(tokens):
    model = language_model()
    x, y, weights = tokens
    W = keras.ops.convert_to_numpy(model.get_layer("classifier").kernel).T
    b = keras.ops.convert_to_numpy(model.get_layer("classifier").bias)
    keep = (weights.reshape(-1) != 0) & (y.reshape(-1) != -1)
    expected = by_hand(model, x, y, keep, W, b)
    data = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(16)
    result = collapse.measure_model(model, data, ignore_class=-1)
    assert result["num_samples"] == keep.sum() < 40 * T
    for key in collapse.METRIC_KEYS:
        np.testing.assert_allclose(result[key], expected[key], rtol=1e-5, atol=1e-9, err_msg=key)
    # A valid class ignored (e.g. a padding token id): absent, so skipped.
    skipped = collapse.measure_model(model, (x, np.maximum(y, 0)), ignore_class=0,
                                     absent_classes="skip")
    kept = np.maximum(y, 0).reshape(-1) != 0
    assert skipped["num_samples"] == kept.sum()
    assert skipped["num_classes_present"] == K - 1


def test_sequence_layers_measure_every_position(tokens):
    model = language_model()
    x, y, _ = tokens
    y = np.maximum(y, 0)
    result = collapse.measure_model(model, (x, y), layers=["mix"], ncc="none")
    mix = outputs_of(model, "mix", x).reshape(-1, D)
    # The by-hand statistics of the flattened positions, one batch.
    expected = collapse.CollapseStatistics(K).update(mix, y.reshape(-1)).measure()
    for key in collapse.FEATURE_ONLY_KEYS:
        np.testing.assert_allclose(result[f"{key}/mix"], expected[key], rtol=1e-5, err_msg=key)
    with pytest.raises(ValueError, match=r"labels must have shape \(16, 7\)"):
        collapse.measure_model(model, (x[:16], y[:16, 0]))


def test_tied_head_embedding_given_arrays_and_callables(tokens):
    model = language_model(tied=True)
    x, y, _ = tokens
    y = np.maximum(y, 0)
    table = model.get_layer("tokens").embeddings
    E = keras.ops.convert_to_numpy(table).astype("float64")
    expected = by_hand(model, x, y, np.ones(y.size, bool), E)
    for classifier in ("tokens", (E, None), (table, None), lambda: (table, None)):
        result = collapse.measure_model(model, (x, y), features="final", classifier=classifier)
        for key in collapse.METRIC_KEYS:
            np.testing.assert_allclose(result[key], expected[key], rtol=1e-5, atol=1e-9,
                                       err_msg=f"{key} {classifier!r}")
    with pytest.raises(ValueError, match="features: a classifier given as"):
        collapse.measure_model(model, (x, y), classifier="tokens")
    with pytest.raises(ValueError, match=r"W must have shape \(K, d\)"):
        collapse.measure_model(model, (x, y), features="final", classifier=(E[0], None))


def test_keras_hub_reversible_embedding_is_a_tied_head(tokens):
    keras_hub = pytest.importorskip("keras_hub")
    x, y, _ = tokens
    y = np.maximum(y, 0)
    inputs = keras.Input((T,), dtype="int32")
    embedding = keras_hub.layers.ReversibleEmbedding(K, D, name="tokens")
    h = keras.layers.LayerNormalization(name="final")(embedding(inputs))
    model = keras.Model(inputs, embedding(h, reverse=True))
    E = keras.ops.convert_to_numpy(embedding.embeddings).astype("float64")
    expected = by_hand(model, x, y, np.ones(y.size, bool), E)
    result = collapse.measure_model(model, (x, y), features="final", classifier="tokens")
    for key in collapse.METRIC_KEYS:
        np.testing.assert_allclose(result[key], expected[key], rtol=1e-5, atol=1e-9, err_msg=key)
