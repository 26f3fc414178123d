"""recipes/linguistic_collapse.py: token-level collapse of GPT-2 models, per width."""

import numpy as np
import pytest

from nc_keras.callbacks import read_csv_log
from nc_keras.train.language import LanguageConfig, _tokens, train_language_models
from nc_keras.train.language_presets import LANGUAGE_PRESETS

TINY = LanguageConfig(vocabulary_size=300, sequence_length=16, max_sequences=24, widths=(8,),
                      num_layers=1, num_heads=2, epochs=2, batch_size=8, max_documents=60)


def test_language_models_log_token_collapse_and_resume(tmp_path):
    pytest.importorskip("keras_hub")
    finals = train_language_models(TINY, tmp_path, verbose=0)
    log = read_csv_log(tmp_path / "width_8" / "log.csv")
    assert log["epoch"] == [0, 1]
    (_, y, w), _ = _tokens(TINY)
    present = np.unique(y[:, 1:][w[:, 1:] > 0]).size  # position 0 is not measured
    assert log["num_classes_present"] == [present, present]
    for key in ("nc1", "cdnv", "gnc2", "unc3", "nc_accuracy", "loss"):
        assert all(np.isfinite(log[key])), key
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert "| 8 |" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "width_8" / "backup").exists()  # removed when fit ends
    # A finished run is not trained again: the same log comes back.
    before = (tmp_path / "width_8" / "log.csv").read_bytes()
    assert train_language_models(TINY, tmp_path, verbose=0)[8]["loss"] == finals[8]["loss"]
    assert (tmp_path / "width_8" / "log.csv").read_bytes() == before


def test_presets_use_a_real_vocabulary_and_valid_widths():
    for name, config in LANGUAGE_PRESETS.items():
        assert config.vocabulary_size >= 5000, name
        assert all(width % config.num_heads == 0 for width in config.widths), name
