"""Presets of `nc_keras.train.train_language_models` (recipes/linguistic_collapse.py).

Data only. "smoke": seconds of training per width, to check the whole path;
"cpu": three widths on 2,048 sequences of 64 tokens (131,072 training
tokens) for 10 epochs, about 15 minutes on a 2-core CPU with the
TensorFlow backend. Wu & Papyan (NeurIPS 2024) train on TinyStories with
the 50,257-token GPT-2 vocabulary, d from 64 to 1,024, on GPUs; the CPU
presets keep a real BPE vocabulary of at least 5,000 tokens.
"""

from nc_keras.train.language import LanguageConfig

LANGUAGE_PRESETS = {
    "smoke": LanguageConfig(vocabulary_size=5000, sequence_length=32, max_sequences=128,
                            widths=(16, 32), num_layers=1, epochs=2, batch_size=32),
    "cpu": LanguageConfig(vocabulary_size=8192, sequence_length=64, max_sequences=2048,
                          widths=(32, 64, 128), num_layers=2, epochs=10, batch_size=32),
}
