"""Layers for neural-collapse experiments.

- `SimplexETF`: a classifier fixed to a K-simplex equiangular tight frame
  (Zhu et al. 2021, Sec. 4.3 and footnote 15), with a trainable bias;
  `simplex_etf` builds the frame.
- `FeatureDecay`: an identity layer that puts the weight decay of the
  unconstrained feature model, lambda_H/2 ||H||_F^2 of eq. (3), on the
  penultimate features of a network (the paper's appendix experiment).
- `Conv2D`, `BatchNormalization`: drop-in subclasses of Keras's layers
  (same weights, config and results) with fused kernels on the torch
  backend, where Keras's own composition costs about a quarter of a ResNet
  training step on CPU (`benchmarks/bench_train.py`).

All four layers are registered for serialization as "nc_keras>ClassName".
"""

# The model builders put `nc_keras.regularizers.HalfL2` on layers; importing
# it here registers it too, so that `import nc_keras.layers` is all that
# `keras.saving.load_model` needs to load an nc_keras model.
from nc_keras import regularizers as _regularizers  # noqa: F401
from nc_keras.layers.batch_normalization import BatchNormalization
from nc_keras.layers.conv2d import Conv2D
from nc_keras.layers.feature_decay import FeatureDecay
from nc_keras.layers.simplex_etf import SimplexETF, simplex_etf

__all__ = ["BatchNormalization", "Conv2D", "FeatureDecay", "SimplexETF", "simplex_etf"]
