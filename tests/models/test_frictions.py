"""New-user frictions of the models: saved models load with the one import the README names; vector inputs."""

from pathlib import Path
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from nc_keras import models


README = Path(__file__).resolve().parents[2] / "README.md"


def test_friction_load_model_needs_only_the_import_the_readme_names(tmp_path):
    assert "`import nc_keras.models` once before\n  `keras.models.load_model(" in README.read_text()
    # An ETF classifier (nc_keras layers) with the appendix's penalties (HalfL2).
    model = models.mlp(width=16, depth=1, classifier="etf", lambda_w=0.1, lambda_b=0.1, lambda_h=0.1)
    model.save(tmp_path / "model.keras")
    code = (
        "import keras, nc_keras.models\n"
        f"model = keras.models.load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(type(model.get_layer('classifier')).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("SimplexETF")


def test_friction_mlp_accepts_vector_inputs():
    model = models.mlp(width=16, depth=1, num_classes=3, input_shape=(16,))
    assert model.output.shape == (None, 3)
    logits = model(np.ones((2, 16), "float32"))
    assert tuple(logits.shape) == (2, 3)
    with pytest.raises(ValueError, match="input_shape must be positive sizes"):
        models.mlp(width=16, depth=1, input_shape=(16, 0))
