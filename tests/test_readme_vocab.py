"""README "Many classes and language models": every example runs, and says what it shows."""

import re
from pathlib import Path

import numpy as np
import pytest


def readme_blocks():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("\n## Many classes and language models\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_many_classes_example_skips_absent_tokens():
    namespace = {}
    exec(readme_blocks()[0], namespace)
    rng, drawn = np.random.default_rng(0), []
    for _ in range(4):  # the example's draws, in its order
        drawn.append(rng.zipf(1.5, size=4096) % 50_257)
        rng.normal(size=(4096, 256))
    seen = np.unique(np.concatenate(drawn))
    result = namespace["result"]
    assert result["num_classes_present"] == seen.size < 50_257
    assert np.isfinite(result["cdnv"]) and np.isfinite(result["gnc2"]) and np.isfinite(result["nc1"])


def test_language_model_example_logs_token_level_collapse():
    pytest.importorskip("keras_hub")
    namespace = {}
    exec(readme_blocks()[1], namespace)
    history, y = namespace["history"], namespace["y"]
    assert history["num_classes_present"] == [np.unique(y[y != 0]).size]
    assert np.isfinite(history["nc1"][0]) and np.isfinite(history["unc3"][0])
