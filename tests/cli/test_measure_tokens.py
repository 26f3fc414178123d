"""`nc-keras measure` on a language model: token level, padding ignored,
absent classes skipped."""

import csv

import keras
import numpy as np
import pytest

from nc_keras import collapse
from nc_keras.cli import main

K, T = 7, 5


def test_measure_language_model_checkpoint(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(1, K - 1, size=(30, T)).astype("int32")  # class K-1 never occurs
    y = np.roll(x, -1, axis=1)
    y[:, -1] = 0  # padding
    tokens = keras.Input((T,), dtype="int32")
    h = keras.layers.Dense(6, activation="tanh", name="features")(keras.layers.Embedding(K, 6)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(K, name="classifier")(h))
    model.save(tmp_path / "lm.keras")
    np.savez(tmp_path / "tokens.npz", x=x, y=y)
    out = tmp_path / "out.csv"
    assert main(["measure", str(tmp_path / "lm.keras"), "--data", str(tmp_path / "tokens.npz"),
                 "--ignore-class", "0", "--absent-classes", "skip", "-o", str(out)]) == 0
    with open(out) as handle:
        (row,) = list(csv.DictReader(handle))
    expected = collapse.measure_model(model, (x, y), ignore_class=0, absent_classes="skip")
    assert int(row["num_samples"]) == np.sum(y != 0) == expected["num_samples"]
    assert float(row["num_classes_present"]) == K - 2  # 0 ignored, K-1 never seen
    for key in ("nc1", "nc2", "cdnv", "accuracy"):
        assert float(row[key]) == pytest.approx(expected[key], rel=1e-6), key
    assert "num_classes_present" in capsys.readouterr().out
