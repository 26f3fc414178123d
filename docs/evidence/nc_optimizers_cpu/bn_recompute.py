"""Eval-mode metrics of an L-BFGS cpu-preset run's weights, with the run's
BatchNorm moving statistics and with statistics recomputed at those weights.

    KERAS_BACKEND=torch python bn_recompute.py DATA_DIR WEIGHTS.weights.h5 ...

WEIGHTS are copies of the run's `backup/latest.weights.h5` taken while it
trained (the backup is deleted when a run completes). "recomputed" sets every
BatchNormalization's momentum to 0 and makes one training-mode pass over the
1,000 training images, so the moving statistics equal that batch's.
"""

import sys

import keras

from nc_keras import collapse, data
from nc_keras.train import TrainConfig, build_model

data_dir, paths = sys.argv[1], sys.argv[2:]
info = data.info("mnist", data_dir=data_dir)
config = TrainConfig(dataset="mnist", model="resnet18_adapt", width=8, optimizer="lbfgs").resolved()
common = dict(shuffle=False, data_dir=data_dir, seed=0)
train = data.load("mnist", "train", 1000, samples_per_class=100, **common)
test = data.load("mnist", "test", 500, samples_per_class=50, **common)
x = keras.ops.convert_to_numpy(next(iter(train))[0])
for path in paths:
    model = build_model(config, 10, info.input_shape)
    model.load_weights(path)
    for name in ("stored", "recomputed"):
        if name == "recomputed":
            for layer in model._flatten_layers():
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = 0.0
            model(x, training=True)
        m, t = collapse.measure_model(model, train), collapse.measure_model(model, test)
        print(f"{path} {name}: train acc {m['accuracy']:.4f} nc1 {m['nc1']:.4g} "
              f"nc3 {m['nc3']:.4g} test acc {t['accuracy']:.4f}")
