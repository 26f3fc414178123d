"""nc_keras.collapse.probes: the classifier, the features and the measured layers of
every model kind the README names (functional, Sequential, keras.applications
with its top, a backbone nested in a functional model, subclassed), each checked
against the features computed independently in the test."""

import keras
import numpy as np
import pytest

from nc_keras.collapse import probes

K = 4


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((6, 32, 32, 3), dtype="float32")


def extracted(probe, x):
    """The probe's [features, *layers] on `x`, as numpy arrays."""
    outputs = probe.extractor(x, training=False)
    if not isinstance(outputs, (list, tuple)):  # the features alone
        outputs = [outputs]
    return [keras.ops.convert_to_numpy(out) for out in outputs]


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def test_functional_default_and_named(images):
    inputs = keras.Input((32, 32, 3))
    maps = keras.layers.Conv2D(5, 3, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(maps)
    hidden = keras.layers.Dense(7, name="embedding")(pooled)
    logits = keras.layers.Dense(K, name="head")(keras.layers.Dropout(0.5)(hidden))
    model = keras.Model(inputs, logits)

    default = probes.probe(model, layers=["conv"])
    assert default.classifier is model.get_layer("head")  # the last (d, K) kernel
    features, conv = extracted(default, images)
    np.testing.assert_allclose(features, numpy(keras.Model(inputs, hidden)(images)), rtol=1e-5)
    # Maps are global-average pooled over height and width.
    np.testing.assert_allclose(conv, numpy(keras.Model(inputs, maps)(images)).mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
    W, b = default.weights()
    np.testing.assert_array_equal(W, numpy(model.get_layer("head").kernel).T)
    np.testing.assert_array_equal(b, numpy(model.get_layer("head").bias))

    named = probes.probe(model, features="pool", classifier="embedding")
    assert named.classifier is model.get_layer("embedding")
    np.testing.assert_allclose(extracted(named, images)[0],
                               numpy(keras.Model(inputs, pooled)(images)), rtol=1e-5)


def test_a_layer_named_classifier_wins_over_the_last_linear_one(images):
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.GlobalAveragePooling2D()(inputs)
    logits = keras.layers.Dense(K, name="classifier")(h)
    model = keras.Model(inputs, [logits, keras.layers.Dense(2, name="aux")(h)])
    assert probes.probe(model).classifier is model.get_layer("classifier")


def test_sequential(images):
    model = keras.Sequential([
        keras.layers.Conv2D(5, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(K),
    ])
    model(images[:1])  # built by a call, as fit builds it
    probe = probes.probe(model, layers=[model.layers[0]])
    assert probe.classifier is model.layers[-1]
    features, conv = extracted(probe, images)
    expected = images
    for layer in model.layers[:3]:
        expected = layer(expected)
    np.testing.assert_allclose(features, numpy(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv, numpy(model.layers[0](images)).mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)


def test_keras_applications_with_its_top(images):
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=K)
    probe = probes.probe(model, layers=["block_6_project_BN"])
    # The softmax head "predictions" is the classifier; h its input, the pooled features.
    assert probe.classifier is model.get_layer("predictions")
    features, block = extracted(probe, images)
    head_input = model.get_layer("predictions").input
    np.testing.assert_allclose(features, numpy(keras.Model(model.input, head_input)(images)),
                               rtol=1e-4, atol=1e-5)
    maps = keras.Model(model.input, model.get_layer("block_6_project_BN").output)(images)
    np.testing.assert_allclose(block, numpy(maps).mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_backbone_nested_in_a_functional_model(images):
    backbone = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, pooling="avg", weights=None)
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(K)(backbone(inputs)))
    probe = probes.probe(model, layers=["block_2_add", f"{backbone.name}/block_6_project_BN"])
    assert probe.classifier is model.layers[-1]
    assert probe.layer_names == ("block_2_add", "block_6_project_BN")
    features, add, project = extracted(probe, images)
    np.testing.assert_allclose(features, numpy(backbone(images, training=False)),
                               rtol=1e-4, atol=1e-5)
    for got, name in ((add, "block_2_add"), (project, "block_6_project_BN")):
        inner = keras.Model(backbone.input, backbone.get_layer(name).output)
        np.testing.assert_allclose(got, numpy(inner(images)).mean(axis=(1, 2)),
                                   rtol=1e-4, atol=1e-5)


def test_subclassed_needs_features_and_classifier(images):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.backbone = keras.Sequential([keras.layers.GlobalAveragePooling2D(),
                                              keras.layers.Dense(6)])
            self.head = keras.layers.Dense(K)

        def call(self, x, training=False):
            return self.head(self.backbone(x, training=training))

    model = Net()
    model(images[:1])
    probe = probes.probe(model, features=lambda x: model.backbone(x, training=False),
                         classifier=model.head)
    assert probe.classifier is model.head and probe.extractor is None
    np.testing.assert_allclose(numpy(probe.features_fn(images)),
                               numpy(model.backbone(images)), rtol=1e-6)
    W, _ = probe.weights()
    assert W.shape == (K, 6)
    with pytest.raises(ValueError, match="features"):
        probes.probe(model, classifier=model.head)


def test_unbuilt_and_ambiguous_models_are_refused_by_name():
    with pytest.raises(ValueError, match="is not built"):
        probes.probe(keras.Sequential([keras.layers.Dense(K)]))
    inputs = keras.Input((8,))
    h = keras.layers.Dense(6, name="hidden")(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(K, name="a")(h),
                                 keras.layers.Dense(K, name="b")(h)])
    with pytest.raises(ValueError, match=r"2 outputs.*classifier=NAME"):
        probes.probe(model)
    assert probes.probe(model, classifier="a").classifier is model.get_layer("a")
