"""Measuring a mixed-precision model in float32, from its own weights.

Under `keras.mixed_precision` ("mixed_bfloat16", "mixed_float16") a model
keeps float32 variables but computes in bfloat16 or float16. Features from
such a pass carry the compute dtype's rounding (bfloat16 keeps 8 bits of
mantissa), and NC1 = tr(Sigma_W Sigma_B^+)/K of a nearly collapsed network
is the ratio of a small within-class spread to the between-class one:
rounding noise of the order of the spread itself moves NC1 by percents
from the float32 model with the same weights (3% for the small conv
model of the tests under mixed_bfloat16, 0.1% under mixed_float16). Neural collapse is a property of
the weights, so the pass measures the network they define in float32:

`probe` builds a float32 twin of the model (its configuration with every
dtype policy set to float32) and a `Float32Probe` that copies the model's
current variables into the twin before each measurement. The model itself
is not changed. Where no twin can be built (features from a callable, a
layer that does not serialize), the pass runs in the compute dtype with one
warning that names it.
"""

import warnings

import keras
import numpy as np

from nc_keras.collapse import probes

__all__ = ["Float32Probe", "compute_dtypes", "probe"]


def compute_dtypes(model):
    """The sorted compute dtypes of the model's layers, nested models included."""
    return sorted({layer.compute_dtype for _, layer in probes._walk(model)
                   if getattr(layer, "compute_dtype", None)})


class Float32Probe(probes.ModelProbe):
    """A `ModelProbe` of a float32 twin, refreshed from the source model's variables.

    `weights()` (which every measurement calls first) copies the source's
    variables into the twin, so the pass and W, b are those of the current
    weights.
    """

    def __init__(self, source, twin_probe):  # noqa: D107 - the twin's probe, adopted whole
        vars(self).update(vars(twin_probe))
        self.source = source

    def sync(self):
        # Through a host copy: the twin must never share a buffer with the
        # source (JAX's predict donates its state buffers).
        for target, value in zip(self.model.weights, self.source.weights):
            target.assign(np.array(keras.ops.convert_to_numpy(value), dtype=target.dtype))

    def weights(self):
        self.sync()
        return super().weights()


def probe(model, features=None, classifier=None, layers=(), pooling="mean"):
    """`probes.probe(model, ...)`, on a float32 twin when the model computes in lower precision.

    The arguments are those of `nc_keras.collapse.probes.probe`; layers
    given as objects are found in the twin by their path.
    """
    lower = [dtype for dtype in compute_dtypes(model) if dtype in ("float16", "bfloat16")]
    if not lower or not model.built:
        return probes.probe(model, features, classifier, layers, pooling)
    why = None
    if callable(features) and not isinstance(features, (str, keras.layers.Layer)):
        why = "features come from a callable, which cannot be rerun in float32"
    else:
        try:
            twin = _float32_twin(model)
        except Exception as error:  # noqa: BLE001 - any layer may fail to rebuild
            why = f"its float32 copy cannot be built ({type(error).__name__}: {error})"
    if why is not None:
        warnings.warn(
            f"the neural-collapse pass of model {model.name!r} runs in the model's compute dtype "
            f"{'/'.join(lower)}, not float32: {why}. Its rounding changes NC1 by percents; "
            "pass features= a layer (or its name) to measure in float32.",
            UserWarning, stacklevel=3)
        return probes.probe(model, features, classifier, layers, pooling)
    paths = {id(layer): path for path, layer in probes._walk(model)}

    def in_twin(spec):
        return paths.get(id(spec), spec) if isinstance(spec, keras.layers.Layer) else spec

    twin_probe = probes.probe(twin, in_twin(features), in_twin(classifier),
                              [in_twin(spec) for spec in layers], pooling)
    return Float32Probe(model, twin_probe)


def _float32_twin(model):
    """The model rebuilt from its configuration with float32 policies (weights not copied)."""
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # layers whose config names no dtype
    try:
        twin = keras.saving.deserialize_keras_object(config)
    finally:
        keras.config.set_dtype_policy(previous)
    shapes = [tuple(v.shape) for v in model.weights]
    if [tuple(v.shape) for v in twin.weights] != shapes:
        raise ValueError("its variables differ from the model's")
    return twin


def _float32_policies(config):
    """`config` with every serialized dtype policy replaced by "float32"."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and \
                isinstance(config.get("config"), dict) and "name" in config["config"]:
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config
