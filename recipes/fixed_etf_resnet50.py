"""Figure 5: learned vs fixed simplex-ETF classifier, and d = K (Sec. 4.3).

ResNet50 (3x3 stem, no max-pool) on CIFAR-10 with augmentation, SGD
(momentum 0.9, lr 0.05, batch 128, weight decay 5e-4, lr / 10 every 40
epochs, 200 epochs), four variants: learned classifier (d = 2048), fixed
ETF, learned with d = K = 10, fixed ETF with d = K. The paper finds all four
on par (~95% test accuracy) with the same collapse.

    python recipes/fixed_etf_resnet50.py --preset paper --data-dir DATA   # GPU, hours
    python recipes/fixed_etf_resnet50.py --preset smoke --data-dir ../shared/data

The smoke preset trains a narrow ResNet18 (width 8, 3x3 stem) on 100 images
per class, batch 32, for 6 epochs: under 3 minutes on a 2-core CPU, where
all four variants learn at the same pace (docs/README.md).
"""

import sys

from nc_keras.cli.recipe import recipe_main
from nc_keras.train import TrainConfig

VARIANTS = [
    {"label": "learned"},
    {"label": "fixed ETF", "classifier": "etf"},
    {"label": "learned d=K", "feature_dim": 10},
    {"label": "fixed ETF d=K", "classifier": "etf", "feature_dim": 10},
]
PAPER = TrainConfig(
    dataset="cifar10", model="resnet50", stem="cifar", augment=True,
    optimizer="sgd", learning_rate=0.05, batch_size=128, epochs=200, weight_decay=5e-4,
)  # fmt: skip
SMOKE = TrainConfig(
    dataset="cifar10", model="resnet18_adapt", width=8, augment=True,
    samples_per_class=100, test_samples_per_class=50,
    optimizer="sgd", learning_rate=0.05, batch_size=32, epochs=6, weight_decay=5e-4,
)  # fmt: skip

if __name__ == "__main__":
    sys.exit(
        recipe_main(
            __doc__,
            {"paper": (PAPER, VARIANTS), "smoke": (SMOKE, VARIANTS)},
            layout="fig5",
            title="Learned vs fixed simplex-ETF classifier (Fig. 5)",
            default_output="runs/fixed_etf",
        )
    )
