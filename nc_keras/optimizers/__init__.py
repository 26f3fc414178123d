"""SGD and Adam with PyTorch's semantics, as the paper's runs use them.

The paper (Zhu et al. 2021, Sec. 4) trains with `torch.optim.SGD` and
`torch.optim.Adam` and weight decay 5e-4 on all parameters. Keras's own
optimizers differ in two details that change the training dynamics:

- Keras's `weight_decay` is decoupled (AdamW-style); PyTorch's is coupled
  L2, the gradient of the lambda/2 ||theta||^2 of eq. (2), added to the
  gradient before the momentum or moment updates
  (`coupled_weight_decay.CoupledWeightDecay`, the base of both).
- Keras's SGD bakes the learning rate into its momentum buffer, so a
  learning-rate drop acts late; PyTorch's takes effect at once (`sgd`).

Each rule is one pure function in `keras.ops`, `sgd_direction` and
`adam_direction`, which the optimizers' `update_step` and the UFM's
minibatch solvers (`nc_keras.ufm.descent`) share; on torch, the same update
of all variables at once runs in `nc_keras.backend.torch.optimizers`.
"""

from nc_keras.optimizers.adam import Adam, adam_direction
from nc_keras.optimizers.coupled_weight_decay import CoupledWeightDecay
from nc_keras.optimizers.sgd import SGD, sgd_direction

__all__ = ["Adam", "CoupledWeightDecay", "SGD", "adam_direction", "sgd_direction"]
