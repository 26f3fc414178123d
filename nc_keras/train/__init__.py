"""One entry point for the paper's training runs (Sec. 4).

`train(TrainConfig(...))` builds the data, the model, the optimizer and the
callbacks from a configuration and runs `model.fit`, writing one run folder
(`nc_keras.run_folder` lists its files); running the same configuration
again after an interruption resumes it. `train_variants` trains several
variants of one configuration and overlays them, as the paper's figures do.

The paper's settings (Sec. 4.1), the defaults of `TrainConfig`: SGD
(momentum 0.9, lr 0.05, batch 128), Adam (lr 1e-3, batch 64), L-BFGS
(history 10, lr 0.1, batch 2048), 200 epochs, the learning rate divided by
10 every 40 epochs, weight decay 5e-4 on all parameters (coupled L2, as
PyTorch applies it).

- `config`: `TrainConfig`, its checks, the per-optimizer defaults and the
  learning-rate schedule.
- `run`: `train` and what it builds (model, optimizer, run folder).
- `resume`: how a rerun continues an interrupted run (same settings,
  same batches, TensorBoard without repeated steps).
- `lbfgs_fit`: `fit_lbfgs`, the mini-batch L-BFGS training loop.
- `losses`: the training losses (`TrainConfig.loss`: ce, mse,
  label_smoothing, focal) as Keras losses of integer labels and logits.
- `variants`: `train_variants`.
"""

from nc_keras.train.config import (
    DECAY_SCHEMES,
    MODEL_NAMES,
    OPTIMIZER_DEFAULTS,
    TrainConfig,
    learning_rate_schedule,
    minority_classes,
)
from nc_keras.run_folder import RunFolderLocked
from nc_keras.train.lbfgs_fit import fit_lbfgs
from nc_keras.train.losses import LOSSES, build_loss, make_loss
from nc_keras.train.run import (
    TrainingDiverged,
    build_model,
    build_optimizer,
    run_directory,
    software_versions,
    summarize,
    train,
)
from nc_keras.train.variants import train_variants, variant_folder

__all__ = [
    "DECAY_SCHEMES",
    "LOSSES",
    "MODEL_NAMES",
    "RunFolderLocked",
    "OPTIMIZER_DEFAULTS",
    "TrainConfig",
    "TrainingDiverged",
    "build_loss",
    "build_model",
    "build_optimizer",
    "fit_lbfgs",
    "learning_rate_schedule",
    "make_loss",
    "minority_classes",
    "run_directory",
    "software_versions",
    "summarize",
    "train",
    "train_variants",
    "variant_folder",
]
