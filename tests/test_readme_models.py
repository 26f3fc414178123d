"""README "Your own model": every example runs, and measures what a hand extraction gives.

Each code block of that section is executed as it stands (on its stand-in
data); the callback's logged metrics must equal `collapse.metrics` on
features extracted here by hand, without the probe's graph tracing, to
1e-6 relative, and every intermediate layer's NC1 that of its pooled output.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from nc_keras import collapse
from nc_keras.callbacks import log_keys

TOLERANCE = 1e-6


def readme_blocks():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("\n## Your own model\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


BLOCKS = readme_blocks()
PREAMBLE, EXAMPLES = BLOCKS[0], {block.split("\n", 1)[0]: block for block in BLOCKS[1:]}


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _pooled(tensor):
    # Pooled in the same compiled pass, as the probe pools: NC1 of a
    # random-init layer amplifies float32 round-off to 1e-6 when the mean
    # runs in another order (measured on JAX, eager against compiled).
    return keras.ops.mean(tensor, axis=(1, 2)) if len(tensor.shape) == 4 else tensor


def _outputs(model, names, x):
    """Outputs of named layers of a functional `model`, by a plain sub-model.

    Through `predict_on_batch`, Keras's inference path, compiled on JAX
    as the callback's pass is (on JAX an eager call of this random-init
    MobileNetV2 gave an NC1 17% off the compiled pass, which the callback
    matches to 1e-10).
    """
    sub = keras.Model(model.input, [_pooled(model.get_layer(name).output) for name in names])
    return keras.tree.flatten(sub.predict_on_batch(x))


def by_hand(kind, model, x):
    """(features, classifier layer, {layer name: pooled output})."""
    if kind == "keras.applications":
        h, block = _outputs(model, ["global_average_pooling2d", "block_6_project_BN"], x)
        return h, model.get_layer("predictions"), {"block_6_project_BN": block}
    if kind == "Sequential":
        inputs = keras.Input(x.shape[1:])
        first = model.layers[0](inputs)
        h = first
        for layer in model.layers[1:-1]:
            h = layer(h)
        h, first = keras.Model(inputs, [h, _pooled(first)]).predict_on_batch(x)
        return h, model.layers[-1], {model.layers[0].name: first}
    if kind == "Functional":
        h, conv = _outputs(model, ["embedding", "conv"], x)
        return h, model.get_layer("head"), {"conv": conv}
    if kind == "A backbone":
        backbone = model.layers[1]
        names = ["block_2_add", "block_6_project_BN"]
        return (backbone.predict_on_batch(x), model.layers[-1],
                dict(zip(names, _outputs(backbone, names, x))))
    assert kind == "Subclassed"
    return _numpy(model.backbone(x, training=False)), model.head, {}


@pytest.mark.parametrize("kind", ["keras.applications", "Sequential", "Functional",
                                  "A backbone", "Subclassed"])
def test_readme_example_measures_what_hand_extraction_gives(kind):
    (block,) = [code for title, code in EXAMPLES.items() if title.startswith(f"# {kind}")]
    namespace = {}
    exec(PREAMBLE, namespace)  # noqa: S102 - the README's own code
    exec(block, namespace)  # noqa: S102
    model, history, x, y = (namespace[key] for key in ("model", "history", "x", "y"))

    h, classifier, layers = by_hand(kind, model, x)
    W = _numpy(classifier.kernel).T
    b = None if classifier.bias is None else _numpy(classifier.bias)
    expected = collapse.metrics(h, y, W, b)
    for key, name in zip(collapse.METRIC_KEYS, log_keys()):
        assert history[name][-1] == pytest.approx(expected[key], rel=TOLERANCE, abs=1e-9), name
    assert set(log_keys(layers=layers)) <= set(history)
    for name, output in layers.items():
        expected = collapse.metrics(output, y, np.eye(4, output.shape[1]))
        for key in collapse.FEATURE_ONLY_KEYS:
            logged = history[collapse.layer_key(key, name)][-1]
            assert logged == pytest.approx(expected[key], rel=TOLERANCE), (name, key)
