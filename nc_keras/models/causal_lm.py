"""A small GPT-2 causal language model for token-level neural collapse.

Wu & Papyan (NeurIPS 2024, "Linguistic Collapse") measure collapse in
GPT-style causal language models: every position t of a sequence is a
sample h_t (the last layer normalization's output) whose class is the next
token, and the classifier is the tied head, logits = h E^T for the token
embedding E (K x d). `causal_lm` builds such a model from keras-hub's
`GPT2Backbone` and `GPT2CausalLM` with random weights (no download; the
`text` extra installs keras-hub); `NC_FEATURES` and `NC_CLASSIFIER` name
what `NeuralCollapse` measures in it.
"""

__all__ = ["NC_CLASSIFIER", "NC_FEATURES", "causal_lm"]

# The features h (B, T, d) and the tied head's embedding (W = E, no bias).
NC_FEATURES = "layer_norm"
NC_CLASSIFIER = "token_embedding"


def causal_lm(vocabulary_size, *, hidden_dim=64, num_layers=2, num_heads=4,
              intermediate_dim=None, sequence_length=64, dropout=0.0):
    """A GPT-2 causal language model, randomly initialized.

    Args:
        vocabulary_size: K, the number of token classes.
        hidden_dim: d, the width of the features (and of the embedding).
        num_layers: transformer blocks.
        num_heads: attention heads (must divide `hidden_dim`).
        intermediate_dim: the feed-forward width (default 4 d, as GPT-2).
        sequence_length: the longest sequence (learned position embeddings).
        dropout: GPT-2's dropout rate (0 for the deterministic recipes).
    Returns:
        A `keras_hub.models.GPT2CausalLM` without preprocessor: inputs
        {"token_ids": (B, T) int, "padding_mask": (B, T) bool}, logits
        (B, T, K).
    """
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError("causal_lm needs keras-hub: pip install 'nc_keras[text]'") from error
    if hidden_dim % num_heads:
        raise ValueError(f"num_heads ({num_heads}) must divide hidden_dim ({hidden_dim})")
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
        hidden_dim=hidden_dim, intermediate_dim=intermediate_dim or 4 * hidden_dim,
        dropout=dropout, max_sequence_length=sequence_length)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
