"""Saved .keras files: nc_keras's objects keep their registered names.

Files saved by earlier versions name the classes "nc_keras>ClassName"
(`keras.saving.register_keras_serializable(package="nc_keras")`); these
names must not change, or those files no longer load.
"""

import subprocess
import sys

import keras
import numpy as np

from nc_keras import models, optimizers, regularizers
from nc_keras.layers import BatchNormalization, Conv2D, FeatureDecay, SimplexETF

REGISTERED = {
    SimplexETF: "nc_keras>SimplexETF",
    FeatureDecay: "nc_keras>FeatureDecay",
    Conv2D: "nc_keras>Conv2D",
    BatchNormalization: "nc_keras>BatchNormalization",
    regularizers.HalfL2: "nc_keras>HalfL2",
    optimizers.SGD: "nc_keras>SGD",
    optimizers.Adam: "nc_keras>Adam",
}


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def test_registered_names_are_those_of_saved_files():
    for cls, name in REGISTERED.items():
        assert keras.saving.get_registered_name(cls) == name
        assert keras.saving.get_registered_object(name) is cls


def test_importing_the_layers_registers_what_the_builders_use():
    # A fresh process: `import nc_keras.layers` is all load_model needs.
    layers = (SimplexETF, FeatureDecay, Conv2D, BatchNormalization, regularizers.HalfL2)
    names = [REGISTERED[cls] for cls in layers]
    code = (
        "import keras, nc_keras.layers\n"
        f"assert all(keras.saving.get_registered_object(n) for n in {names!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_trained_model_with_every_nc_keras_object_round_trips(tmp_path):
    model = models.resnet18_adapt(
        width=2, num_classes=4, input_shape=(8, 8, 3), classifier="etf",
        lambda_h=1e-3, lambda_b=5e-4, etf_rotation_seed=3,
    )  # fmt: skip
    model.compile(
        optimizer=optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 3)).astype("float32")
    model.fit(x, np.array([0, 1, 2, 3, 0]), epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    classifier = loaded.get_layer("classifier")
    assert isinstance(classifier, SimplexETF) and isinstance(loaded.get_layer("features"), FeatureDecay)
    assert isinstance(classifier.bias_regularizer, regularizers.HalfL2)
    assert type(loaded.optimizer) is optimizers.SGD
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(_numpy(loaded.predict(x, verbose=0)), _numpy(model.predict(x, verbose=0)))


def test_resnet_with_fused_layers_survives_keras_file_round_trip(tmp_path):
    model = models.resnet18(num_classes=3, input_shape=(16, 16, 3), stem="cifar")
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    x = np.random.default_rng(2).standard_normal((2, 16, 16, 3)).astype("float32")
    path = tmp_path / "resnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("layer2_0_conv1"), Conv2D)
    assert loaded.get_layer("layer2_0_conv1").symmetric_padding == 1
    assert isinstance(loaded.get_layer("bn1"), BatchNormalization)
    np.testing.assert_array_equal(_numpy(loaded.predict(x, verbose=0)), _numpy(model.predict(x, verbose=0)))
