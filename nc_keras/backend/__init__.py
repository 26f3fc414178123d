"""The one place for backend-specific code.

Everything else in nc_keras is written in `keras.ops` and reaches the active
backend (``keras.backend.backend()``) only through the functions of this
package, all importable from here (`from nc_keras import backend;
backend.X`):

- `core`: the active backend (`name`), `float64`, `to_tensor`, `to_numpy`,
  `compile`;
- `autodiff`: `value_and_grad`, `hessian_vector_product`;
- `flat`: `pack` a list of arrays into one flat vector and `unpack` it;
- `lbfgs`: full-batch (`lbfgs_minimize`) and mini-batch
  (`lbfgs_batch_minimizer`) L-BFGS;
- `distribute`: data-parallel replication (`replicate`, `Replication`,
  `process_index`) and forward passes under it (`sharded_predictor`;
  `function_predictor` for a plain callable);
- `torch`: the fused torch kernels behind `nc_keras.layers.Conv2D`,
  `nc_keras.layers.BatchNormalization` and the optimizers' updates.

The differentiation and L-BFGS functions work on a *flat* float64
parameter vector (see `flat`) so that the unconstrained feature model
(`nc_keras.ufm`) and network training share them.
"""

from nc_keras.backend.autodiff import hessian_vector_product, value_and_grad
from nc_keras.backend.core import compile, float64, name, to_numpy, to_tensor  # noqa: A004
from nc_keras.backend.distribute import (
    STRATEGIES,
    Replication,
    ShardedPredictor,
    check_replication,
    function_predictor,
    process_index,
    replicate,
    sharded_predictor,
)
from nc_keras.backend.flat import pack, unpack
from nc_keras.backend.lbfgs import LBFGSResult, lbfgs_batch_minimizer, lbfgs_minimize
from nc_keras.backend.torch.layers import fused_batch_norm, fused_conv2d
from nc_keras.backend.torch.optimizers import fused_adam_update, fused_sgd_update

__all__ = [
    "STRATEGIES",
    "LBFGSResult",
    "Replication",
    "ShardedPredictor",
    "check_replication",
    "compile",
    "float64",
    "fused_adam_update",
    "fused_batch_norm",
    "fused_conv2d",
    "fused_sgd_update",
    "function_predictor",
    "hessian_vector_product",
    "lbfgs_batch_minimizer",
    "lbfgs_minimize",
    "name",
    "pack",
    "process_index",
    "replicate",
    "sharded_predictor",
    "to_numpy",
    "to_tensor",
    "unpack",
    "value_and_grad",
]
