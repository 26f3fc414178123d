"""New-user frictions of the models: saved models and checkpoints load after `import nc_keras`; vector inputs."""

from pathlib import Path
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from nc_keras import models
from nc_keras.train import TrainConfig, train


README = Path(__file__).resolve().parents[2] / "README.md"


def test_friction_load_model_needs_only_the_import_the_readme_names(tmp_path):
    assert "`import nc_keras` once before `keras.models.load_model(\"m.keras\")`\n  registers every" in README.read_text()
    # An ETF classifier (nc_keras layers) with the appendix's penalties (HalfL2).
    model = models.mlp(width=16, depth=1, classifier="etf", lambda_w=0.1, lambda_b=0.1, lambda_h=0.1)
    model.save(tmp_path / "model.keras")
    code = (
        "import keras, nc_keras\n"
        f"model = keras.models.load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(type(model.get_layer('classifier')).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("SimplexETF")


_REGISTERED = """
import importlib, json, pkgutil, sys
import keras
import nc_keras

def ours():
    return sorted(name for name in keras.saving.get_custom_objects() if name.startswith("nc_keras>"))

model = keras.models.load_model(sys.argv[1])  # with its optimizer and loss
after_import = ours()
for module in pkgutil.walk_packages(nc_keras.__path__, "nc_keras."):
    if ".cli" not in module.name and ".backend." not in module.name:
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as error:  # an optional extra (keras-hub, ...) not installed
            if (error.name or "").startswith("nc_keras"):
                raise
print(json.dumps({"optimizer": type(model.optimizer).__name__, "loss": type(model.loss).__name__,
                  "iterations": int(model.optimizer.iterations), "after_import": after_import,
                  "everything": ours()}))
"""


def test_friction_import_nc_keras_registers_every_custom_object(tmp_path):
    # What `nc-keras train --checkpoints` writes: the model compiled with
    # nc_keras's SGD and loss, the optimizer's state included.
    config = TrainConfig(
        dataset="mnist_subset", model="mlp", width=16, depth=2, epochs=1, batch_size=50,
        samples_per_class=10, test_samples_per_class=5, seed=3, output_dir=str(tmp_path / "run"),
        checkpoints=True, loss="focal", classifier="etf", decay="features",
    )  # fmt: skip
    train(config, verbose=0)
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch_0001.keras"
    done = subprocess.run([sys.executable, "-c", _REGISTERED, str(checkpoint)], capture_output=True,
                          text=True, env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert (found["optimizer"], found["loss"], found["iterations"]) == ("SGD", "SparseFocalCrossentropy", 2)  # 100 samples, batch 50
    assert found["after_import"] == found["everything"]
    assert {"nc_keras>SGD", "nc_keras>Adam", "nc_keras>SimplexETF", "nc_keras>HalfL2",
            "nc_keras>FeatureDecay"} <= set(found["everything"])


def test_friction_mlp_accepts_vector_inputs():
    model = models.mlp(width=16, depth=1, num_classes=3, input_shape=(16,))
    assert model.output.shape == (None, 3)
    logits = model(np.ones((2, 16), "float32"))
    assert tuple(logits.shape) == (2, 3)
    with pytest.raises(ValueError, match="input_shape must be positive sizes"):
        models.mlp(width=16, depth=1, input_shape=(16, 0))
