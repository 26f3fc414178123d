"""Token-level neural collapse in causal language models of several widths.

Wu & Papyan (NeurIPS 2024, "Linguistic Collapse") train GPT-style models of
several widths d on one corpus and follow, per epoch, the collapse of the
last layer's features h_t over the next-token classes: NC1 as the CDNV
(Galanti et al. 2022), hyperspherical uniformity (GNC2), uniform duality
(UNC3) and the rest of the metrics that need no simplex ETF (the K
observed tokens far outnumber d + 1). `train_language_models` does that
with `nc_keras.models.causal_lm` on the standard library's docstrings
(`nc_keras.data.text`), one run folder per width, each resumable
(`keras.callbacks.BackupAndRestore`), then draws the metrics against epochs,
one curve per width. Presets are data: `nc_keras.train.language_presets`.
"""

import dataclasses
from pathlib import Path

import numpy as np

__all__ = ["LanguageConfig", "train_language_models"]


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    """One preset of `train_language_models`.

    Attributes:
        vocabulary_size: K of the byte-level BPE tokenizer (at least 257).
        sequence_length: tokens per training sequence T.
        max_sequences: sequences kept from the corpus (None: all).
        widths: the feature dimensions d, one model each.
        num_layers, num_heads: transformer blocks and attention heads.
        epochs, batch_size, learning_rate: Adam training.
        max_documents: docstrings read (None: the whole standard library).
        seed: weights and order of the batches.
    """

    vocabulary_size: int = 8192
    sequence_length: int = 64
    max_sequences: int = 2048
    widths: tuple = (32, 64, 128)
    num_layers: int = 2
    num_heads: int = 4
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    max_documents: int = None
    seed: int = 0


def _tokens(config):
    """(x, y, w) next-token examples and the tokenizer, from the docstring corpus."""
    from nc_keras.data import text

    documents = text.docstring_corpus(config.max_documents)
    tokenizer = text.train_tokenizer(documents, config.vocabulary_size)
    ids = [encoding.ids for encoding in tokenizer.encode_batch(documents)]
    x, y, w = text.token_windows(ids, config.sequence_length, config.max_sequences)
    return (x, y, w), tokenizer


def _finished(run_dir, epochs):
    from nc_keras.callbacks import read_csv_log

    log = run_dir / "log.csv"
    return log.exists() and len(read_csv_log(log).get("epoch", [])) >= epochs


def train_language_models(config, output_dir, verbose="auto"):
    """Trains one causal LM per width and measures token-level collapse per epoch.

    Collapse is measured on the training tokens at positions 1 to T - 1 of
    every window (position 0 sees one token only, see the comment below).
    Every run folder `output_dir/width_<d>` holds `log.csv` (loss, accuracy
    and the `NeuralCollapse` keys per epoch, "num_classes_present" among
    them), `config.json`, and, while training, `backup/` (an interrupted
    run resumes where it stopped; finished runs are not trained again).
    Then `figure.png` (the metrics against epochs, one curve per width) and
    `summary.md` (the last epoch of each run) in `output_dir`.

    Returns:
        {width: the last epoch's logs}.
    """
    import keras

    from nc_keras import models
    from nc_keras.callbacks import EpochCSVLogger, NeuralCollapse, read_csv_log
    from nc_keras.io_utils import write_json, write_text
    from nc_keras.models.causal_lm import NC_CLASSIFIER, NC_FEATURES
    from nc_keras.plots import plot_runs

    output_dir = Path(output_dir)
    (x, y, w), tokenizer = _tokens(config)
    vocabulary = tokenizer.get_vocab_size()
    inputs = {"token_ids": x, "padding_mask": np.ones_like(x, dtype=bool)}
    # The first position of a window sees one token: its features are that
    # token's embedding, the same in every window it starts, so two next
    # tokens seen only there would have equal class means (CDNV and GNC2
    # infinite). It is trained on, not measured.
    measured = w.copy()
    measured[:, 0] = 0.0
    observed = int(np.unique(y[measured > 0]).size)
    finals = {}
    for width in config.widths:
        run_dir = output_dir / f"width_{width}"
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", {
            "label": f"d = {width}", "width": width, "vocabulary_size": vocabulary,
            "observed_tokens": observed, "training_tokens": int(w.sum()),
            "measured_tokens": int(measured.sum()),
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "widths"}})
        if not _finished(run_dir, config.epochs):
            keras.utils.set_random_seed(config.seed)
            model = models.causal_lm(vocabulary, hidden_dim=width, num_layers=config.num_layers,
                                     num_heads=config.num_heads,
                                     sequence_length=config.sequence_length)
            model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          weighted_metrics=["accuracy"])
            collapse = NeuralCollapse(
                (inputs, y, measured), features=NC_FEATURES, classifier=NC_CLASSIFIER,
                absent_classes="skip", ncc="none", batch_size=config.batch_size * 4)
            model.fit(inputs, y, sample_weight=w, epochs=config.epochs,
                      batch_size=config.batch_size, shuffle=True, verbose=verbose,
                      callbacks=[collapse, EpochCSVLogger(run_dir / "log.csv"),
                                 keras.callbacks.BackupAndRestore(str(run_dir / "backup"))])
            keras.backend.clear_session()
        log = read_csv_log(run_dir / "log.csv")
        finals[width] = {key: values[-1] for key, values in log.items()}
    run_dirs = [output_dir / f"width_{width}" for width in config.widths]
    plot_runs(run_dirs, output_dir / "figure.png", layout="linguistic",
              title=f"Token-level collapse: {observed} of {vocabulary} tokens observed, "
                    f"{int(w.sum())} training tokens")
    write_text(output_dir / "summary.md", _summary(finals))
    return finals


_SUMMARY_KEYS = ("loss", "accuracy", "nc1", "cdnv", "gnc2", "unc3", "means_norm_cv",
                 "trace_ratio", "num_classes_present")


def _summary(finals):
    lines = ["| width | " + " | ".join(_SUMMARY_KEYS) + " |",
             "|" + "---|" * (len(_SUMMARY_KEYS) + 1)]
    for width, logs in finals.items():
        values = [f"{logs.get(key, float('nan')):.4g}" for key in _SUMMARY_KEYS]
        lines.append(f"| {width} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"
