"""Which tensors of a model neural collapse is measured on.

A measurement needs the classifier (W = kernel^T, b) and the features h it
consumes (Zhu et al. 2021, Sec. 4: the penultimate, un-normalized features
after global pooling), and may also look at intermediate layers. `probe`
finds them in any Keras model:

- `classifier`: a layer (or its name) whose kernel is (d, K): Dense,
  SimplexETF, with or without bias, with any activation (only the argmax of
  W h + b is used, and a softmax keeps it). Default: the layer named
  "classifier", else the last layer with a 2-D kernel. A tied head (a
  language model whose logits are h E^T for its token embedding E) is
  given as that `Embedding` layer (keras-hub's `ReversibleEmbedding`
  included): W = E (K, d), b = 0. Any other head: `classifier=(W, b)`
  (arrays or variables, read at each measurement) or a callable returning
  them. These three need `features=`.
- `features`: a layer (or its name), whose output is used, or a callable
  x -> features for a model without a graph (subclassed). Default: what the
  classifier is called on.
- `layers`: more layers (or names) whose outputs are measured without the
  classifier (NC1 and the other class-mean metrics); maps of rank > 2 are
  global-average pooled (`pooling="mean"`) or flattened ("flatten").

Sequence models: when the features are (B, T, d) (a Dense applied at
every position gives (B, T, K) logits), every position is a sample
(token-level collapse): the features, and every measured layer with a
(B, T, d_i) output, are not pooled; the labels are then (B, T).

Names are looked up recursively, into nested models (a keras.applications
backbone inside a functional model), and "outer/inner" paths pick one of
several equal names. The extractor is one `keras.Model` from the model's
inputs to [features, *layer outputs]: the model's graph is traced again
with each nested model opened up, so a layer deep inside a backbone and
the head on top of it share one forward pass.
"""

import difflib

import keras
import numpy as np

from nc_keras.backend import internals
from nc_keras.collapse.inputs import to_numpy
from nc_keras.deprecation import renamed_arguments

__all__ = ["LAYER_REDUCTIONS", "MAX_FLATTEN_WIDTH", "POOLINGS", "ModelProbe", "check_pooling",
           "classifier_weights", "find_classifier", "find_layer", "probe"]

# How maps of rank > 2 become (N, d) features: global average pooling or
# flattening. (`LAYER_REDUCTIONS`: the former name, kept for one release.)
POOLINGS = ("mean", "flatten")
LAYER_REDUCTIONS = POOLINGS
# A flattened map of width d costs a d x d float64 scatter: 2 GB at 16384.
MAX_FLATTEN_WIDTH = 16384
# Errors list at most this many candidate layers.
_SHOWN = 5


class ModelProbe:
    """What one measurement pass reads from a model (built by `probe`).

    Attributes:
        model: the model.
        classifier: the classifier layer (None for `classifier=(W, b)` or a
            callable); `weights()` reads W and b.
        extractor: a `keras.Model` from the model's inputs to [features,
            *layer outputs] (reduced to (N, d_i), or (N, T, d_i) for
            sequences), or None when the features come from a callable.
        features_fn: the callable x -> features, or None.
        layer_names: names of the extra layers, in the extractor's order.
        sequence: whether every position of (B, T, d) features is a sample.
    """

    def __init__(self, model, classifier, extractor=None, features_fn=None, layer_names=(),
                 weights_fn=None, sequence=False):
        self.model = model
        self.classifier = classifier
        self.extractor = extractor
        self.features_fn = features_fn
        self.layer_names = tuple(layer_names)
        self.sequence = sequence
        self._weights_fn = weights_fn or (lambda: classifier_weights(classifier))

    @property
    def num_classes(self):
        return int(self.weights()[0].shape[0])

    def weights(self):
        """The classifier's current (W, b): W (K, d) float64, b (K,) or None."""
        return self._weights_fn()

    def predictor(self):
        """How the active distribution runs the extractor (or the callable)."""
        from nc_keras import backend

        if self.extractor is None:
            return backend.function_predictor(self.features_fn)
        return backend.sharded_predictor(self.model, self.extractor)


def classifier_weights(layer):
    """(W, b) of a classifier layer: W (K, d) float64, b (K,) or None.

    A Dense-like layer: W = kernel^T. An `Embedding` used as a tied head
    (logits h E^T): W = E, no bias; keras-hub's `ReversibleEmbedding` with
    `tie_weights=False` has its own reverse kernel (d, K): W = its transpose.
    """
    if isinstance(layer, keras.layers.Embedding):
        reverse = getattr(layer, "reverse_embeddings", None)
        if reverse is not None and not getattr(layer, "tie_weights", True):
            return to_numpy(reverse, np.float64).T, None
        return to_numpy(layer.embeddings, np.float64), None
    W = to_numpy(layer.kernel, np.float64).T
    bias = getattr(layer, "bias", None)
    return W, None if bias is None else to_numpy(bias, np.float64)


def _given_weights(source):
    """A function reading (W, b) from `classifier=(W, b)` or a callable returning it."""

    def weights():
        pair = source() if callable(source) else source
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError("classifier: a callable must return (W, b), W (K, d) and b "
                             f"(K,) or None; got {type(pair).__name__}")
        W, b = pair
        W = to_numpy(W, np.float64)
        if W.ndim != 2 or W.shape[0] < 2:
            raise ValueError(f"classifier: W must have shape (K, d) with K >= 2; got {W.shape}")
        return W, None if b is None else to_numpy(b, np.float64).reshape(-1)

    return weights


def _is_given(classifier):
    """Whether `classifier` is (W, b) or a callable, not a layer or a name."""
    if isinstance(classifier, (str, keras.layers.Layer)) or classifier is None:
        return False
    return callable(classifier) or isinstance(classifier, (tuple, list))


def check_pooling(pooling):
    """ValueError unless `pooling` is one of `POOLINGS`."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
    return pooling


@renamed_arguments(reduction="pooling")
def probe(model, features=None, classifier=None, layers=(), pooling="mean"):
    """The `ModelProbe` of `model`: its classifier, features and extra layers.

    Args:
        model: a built Keras model: functional, Sequential, one with nested
            models, or subclassed (then `features` must be a callable).
        features: None (the classifier's input), a layer or its name, or a
            callable x -> (N, d) features, run on numpy batches; it should
            run the model in inference mode (e.g.
            `lambda x: model.backbone(x, training=False)`).
        classifier: None (the layer named "classifier", else the last layer
            with a 2-D kernel), a layer or its name; an `Embedding` layer
            (a tied head: W = its table); or (W, b), arrays or variables,
            or a callable returning them, for any other head. The last
            three need `features`.
        layers: layers or names whose outputs are measured too.
        pooling: "mean" (global average pooling of maps of rank > 2 over
            every axis but the batch and the channels) or "flatten".
    Raises:
        ValueError: naming the candidate layers and the argument to pass,
            when a choice is ambiguous or impossible.
    """
    check_pooling(pooling)
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built: call it on a batch, "
                         "build it, or measure inside fit")
    given = _is_given(classifier)
    layer = None if given else find_classifier(model, classifier)
    weights_fn = _given_weights(classifier) if given else None
    if (given or isinstance(layer, keras.layers.Embedding)) and features is None:
        raise ValueError(
            "features: a classifier given as (W, b), a callable or an Embedding "
            "(a tied head) does not say where the features come from: pass "
            "features=the layer whose output the head consumes (e.g. the final "
            "layer normalization)")
    layers = [find_layer(model, spec, "layers") for spec in layers]
    names = [item.name for item in layers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"layers: several measured layers are named {repeated}; "
                         "measure each once")
    if callable(features) and not isinstance(features, (str, keras.layers.Layer)):
        if layers:
            raise ValueError(
                "layers= needs features from the model's graph (a layer or its "
                "name), not a callable: one forward pass gives them all")
        return ModelProbe(model, layer, features_fn=features, weights_fn=weights_fn)
    graph = _graph_of(model)
    if graph is None:
        raise ValueError(
            f"model {model.name!r} ({type(model).__name__}) has no graph of layers "
            "to read features from (a subclassed model, or a Sequential never "
            "built): pass features=a callable x -> features, e.g. "
            "features=lambda x: model.backbone(x, training=False), and "
            "classifier=the layer that consumes them")
    features_layer = None if features is None else find_layer(model, features, "features")
    taps = _Tracer(model, [layer, features_layer, *layers]).run(graph)
    if features_layer is None:
        if id(layer) not in taps:
            raise ValueError(f"classifier {layer.name!r} is not called in the graph of "
                             f"model {model.name!r}: pass features=LAYER_NAME")
        h = taps[id(layer)][0]
    else:
        h = _output(taps, features_layer)
    # (B, T, d) features: a sequence model, every position a sample.
    sequence = _rank(h) == 3
    h = _reduce(h, pooling, f"features ({_describe(features_layer, layer)})", sequence)
    d = int((weights_fn() if given else classifier_weights(layer))[0].shape[1])
    if h.shape[-1] != d:
        raise ValueError(
            f"the features, {_describe(features_layer, layer)}, have width "
            f"{h.shape[-1]}, but classifier {_name(layer)} takes {d}: pass "
            "features= the layer the classifier consumes")
    outputs = [h] + [_reduce(_output(taps, item), pooling, f"layer {item.name!r}", sequence)
                     for item in layers]
    extractor = keras.Model(graph.input, outputs, name="nc_probe")
    return ModelProbe(model, layer, extractor=extractor, layer_names=names,
                      weights_fn=weights_fn, sequence=sequence)


def _name(layer):
    return "given as (W, b)" if layer is None else repr(layer.name)


def _rank(tensor):
    shape = getattr(tensor, "shape", None)
    return None if shape is None else len(shape)


def _output(taps, layer):
    """The traced output of `layer`; an input layer is its own tensor."""
    if isinstance(layer, keras.layers.InputLayer):
        return layer.output
    return taps.get(id(layer), (None, None))[1]


def _describe(features_layer, classifier):
    if features_layer is None:
        return f"the input of {_name(classifier)}"
    return f"the output of {features_layer.name!r}"


# ---------------------------------------------------------------------------
# Finding layers.


# The functional graph of a model: its own, a built Sequential's, or None.
_graph_of = internals.functional_graph


def _walk(model, prefix=""):
    """(path, layer) of every layer, depth first, nested models opened up."""
    for layer in model.layers:
        path = prefix + layer.name
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer, path + "/")


def find_layer(model, spec, argument):
    """The layer `spec` (a layer, a name or an "outer/inner" path) of `model`."""
    if isinstance(spec, keras.layers.Layer):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"{argument}: expected a layer or a layer name; got {spec!r}")
    found = [(path, layer) for path, layer in _walk(model)
             if path == spec or (("/" not in spec) and layer.name == spec)]
    # One layer reached by two paths (a tied embedding used by a nested
    # backbone and by the head around it) is one layer.
    if len({id(layer) for _, layer in found}) == 1:
        return found[0][1]
    if found:
        paths = [path for path, _ in found]
        raise ValueError(
            f"{argument}: {len(found)} layers are named {spec!r}: "
            f"{_short(paths)}; pass one path, e.g. {argument}={paths[-1]!r}")
    walked = list(_walk(model))
    paths = [path for path, _ in walked]
    # Matched on names (a nested layer's path is long), shown as paths.
    close = difflib.get_close_matches(spec.rsplit("/", 1)[-1], [layer.name for _, layer in walked],
                                      n=_SHOWN, cutoff=0.6)
    close = [path for path, layer in walked if layer.name in close][:_SHOWN]
    hint = f" Close names: {_short(close)}." if close else ""
    raise ValueError(f"{argument}: model {model.name!r} has no layer {spec!r} "
                     f"(it has {len(paths)} layers).{hint}")


def _short(items):
    shown = ", ".join(repr(item) for item in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _is_linear(layer):
    kernel = getattr(layer, "kernel", None)
    return kernel is not None and len(kernel.shape) == 2


def find_classifier(model, spec=None):
    """The classifier layer: `spec`, the one named "classifier", or the last linear one."""
    if spec is not None:
        layer = find_layer(model, spec, "classifier")
        if not (_is_linear(layer) or isinstance(layer, keras.layers.Embedding)):
            raise ValueError(
                f"classifier {layer.name!r} ({type(layer).__name__}) has no (d, K) "
                "kernel: pass the Dense (or SimplexETF) layer that gives the logits, "
                "the Embedding of a tied head, or classifier=(W, b)")
        return layer
    walked = list(_walk(model))
    named = [layer for path, layer in walked if layer.name == "classifier" and _is_linear(layer)]
    if len(named) == 1:
        return named[0]
    linear = [path for path, layer in walked if _is_linear(layer)]
    if not linear:
        raise ValueError(
            f"model {model.name!r} has no layer with a (d, K) kernel (Dense, "
            "SimplexETF) to read the classifier W from: pass classifier=LAYER")
    graph = _graph_of(model)
    outputs = graph.outputs if graph is not None else [None]
    if len(named) > 1 or len(outputs) > 1:
        why = (f"{len(named)} layers are named 'classifier'" if len(named) > 1
               else f"model {model.name!r} has {len(outputs)} outputs")
        raise ValueError(f"which classifier? {why}; the last layers with a (d, K) "
                         f"kernel are {_short(linear[::-1])}: pass classifier=NAME")
    path = linear[-1]
    layer = dict(walked)[path]
    if layer.kernel.shape[1] < 2:
        raise ValueError(
            f"the last layer with a 2-D kernel, {path!r}, has {layer.kernel.shape[1]} "
            "output: neural collapse needs K >= 2 classes; pass classifier=NAME "
            f"(layers with a (d, K) kernel: {_short(linear[::-1])})")
    return layer


# ---------------------------------------------------------------------------
# Tracing the graph again, nested models opened up.


class _Tracer:
    """Calls a model's layers again on its inputs, recording wanted layers.

    `run(graph)` replays the functional graph node by node on the graph's own
    Input tensors (each layer call adds a node, as sharing a layer does;
    the model's own graph and `layer.output` are unchanged). Nested models
    that hold a wanted layer are replayed layer by layer too, instead of as
    one call, so their inner tensors become tensors of the outer graph.
    Returns {id(layer): (first call's input, its output)}.
    """

    def __init__(self, model, wanted):
        self.wanted = {id(layer) for layer in wanted if layer is not None}
        self.holders = set()
        self._find_holders(model)
        self.taps = {}

    def _find_holders(self, model):
        held = False
        for layer in model.layers:
            inner = isinstance(layer, keras.Model) and self._find_holders(layer)
            held = held or inner or id(layer) in self.wanted
        if held:
            self.holders.add(id(model))
        return held

    def run(self, graph):
        self._replay(graph, graph.inputs)
        return self.taps

    def _replay(self, graph, inputs):
        # As a Functional calls itself, each operation wrapped to record its
        # tensors or to open it up.
        return internals.run_through_graph(graph, inputs, self._wrap)

    def _wrap(self, operation):
        def call(*args, **kwargs):
            inner = _graph_of(operation) if id(operation) in self.holders else None
            if inner is not None:
                outputs = self._replay(inner, args[0])
            else:
                outputs = operation(*args, **kwargs)
            if id(operation) in self.wanted and id(operation) not in self.taps:
                self.taps[id(operation)] = (args[0] if args else None, outputs)
            return outputs

        return call


def _reduce(tensor, pooling, what, sequence=False):
    """(N, ...) symbolic tensor -> (N, d): pooled or flattened.

    In a sequence model (`sequence`), (N, T, d) outputs stay as they are:
    every position is a sample.
    """
    if tensor is None:
        raise ValueError(f"{what}: never computed in the model's graph")
    if isinstance(tensor, (list, tuple, dict)):
        raise ValueError(f"{what}: several tensors; measure a layer with one output")
    if len(tensor.shape) <= 2 or (sequence and len(tensor.shape) == 3):
        return tensor
    if sequence:
        raise ValueError(f"{what}: shape {tuple(tensor.shape)} in a sequence model; "
                         "measure layers with (batch, positions, width) outputs")
    if pooling == "flatten":
        width = int(np.prod(tensor.shape[1:]))
        if width > MAX_FLATTEN_WIDTH:
            raise ValueError(
                f"{what}: flattened width {width} is above {MAX_FLATTEN_WIDTH} (its "
                f"{width} x {width} scatter would take {8 * width**2 / 2**30:.0f} GB); "
                "use pooling='mean'")
        return keras.ops.reshape(tensor, (-1, width))
    channels_first = keras.config.image_data_format() == "channels_first"
    axes = tuple(range(2, len(tensor.shape))) if channels_first else tuple(
        range(1, len(tensor.shape) - 1))
    return keras.ops.mean(tensor, axis=axes)
