"""Networks of the paper, with a learned or a fixed Simplex-ETF classifier.

Every builder returns a `keras.Model` mapping images to logits, in which

- the layer named `"features"` outputs the penultimate features h (after
  global pooling, not normalized): the H of eq. (3);
- the layer named `"classifier"` holds W (its `kernel` is W^T, shape (d, K))
  and the bias b: a `keras.layers.Dense` (`classifier="learned"`) or an
  `nc_keras.layers.SimplexETF` (`classifier="etf"`).

The NC tools (`nc_keras.collapse`, `nc_keras.callbacks`) rely on these two
names.

- `resnet`: ResNet18-152 in the torchvision layout, `resnet18_adapt`
  (adjustable width, Sec. 4.2);
- `mlp`: the MLP of Sec. 4.2;
- `densenet`: DenseNet169;
- `head`: the last layer every builder ends in (`classification_head`);
- `parameter_savings`: the parameter counts of Sec. 4.3;
- `registry`: every network by name, with its title and options (`MODELS`);
- `causal_lm`: a GPT-2 language model for token-level collapse (keras-hub).
"""

from nc_keras.models.causal_lm import causal_lm
from nc_keras.models.densenet import densenet169
from nc_keras.models.head import CLASSIFIERS, classification_head
from nc_keras.models.mlp import mlp
from nc_keras.models.registry import MODEL_NAMES, MODELS
from nc_keras.models.parameter_savings import PAPER_SAVINGS, count_trainable_params, parameter_savings
from nc_keras.models.resnet import (
    STEMS,
    resnet18,
    resnet18_adapt,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)

__all__ = [
    "CLASSIFIERS",
    "MODELS",
    "MODEL_NAMES",
    "PAPER_SAVINGS",
    "STEMS",
    "causal_lm",
    "classification_head",
    "count_trainable_params",
    "densenet169",
    "mlp",
    "parameter_savings",
    "resnet18",
    "resnet18_adapt",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]
