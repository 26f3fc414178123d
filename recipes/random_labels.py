"""Figure 4: collapse on random labels grows with network width (Sec. 4.2).

CIFAR-10 with every label replaced by a fixed random balanced assignment
(`--dataset random_pixels` for images of uniform random pixels instead),
SGD (lr 0.01, batch 64, weight decay 1e-4, momentum 0.9), 200 epochs.
ResNet18 of width k (stages k, 2k, 4k, 8k, 3x3 stem) and MLPs
(Linear-BN-ReLU): wider networks reach zero training error and stronger
collapse. The paper's text gives no list of widths; the paper preset takes
ResNet18 widths 8-64 and MLPs of width 512-2048, depth 4.

    python recipes/random_labels.py --preset paper --data-dir DATA    # GPU, hours
    python recipes/random_labels.py --preset smoke --data-dir ../shared/data

The smoke preset fits MLPs of three widths to 50 random-label images per
class: minutes on a CPU.
"""

import sys

from nc_keras.cli.recipe import recipe_main
from nc_keras.train import TrainConfig

PAPER_VARIANTS = [
    {"label": f"ResNet18 width {k}", "model": "resnet18_adapt", "width": k} for k in (8, 16, 32, 64)
] + [
    {"label": f"MLP width {w}", "model": "mlp", "width": w, "depth": 4} for w in (512, 1024, 2048)
]
SMOKE_VARIANTS = [
    {"label": f"MLP width {w}", "model": "mlp", "width": w, "depth": 3} for w in (16, 64, 256)
]
PAPER = TrainConfig(
    dataset="cifar10_random", optimizer="sgd", learning_rate=0.01, batch_size=64,
    epochs=200, weight_decay=1e-4,
)  # fmt: skip
SMOKE = TrainConfig(
    dataset="cifar10_random", samples_per_class=50, test_samples_per_class=20,
    optimizer="sgd", learning_rate=0.01, batch_size=64, epochs=30, lr_drop_every=0,
    weight_decay=1e-4,
)  # fmt: skip

if __name__ == "__main__":
    sys.exit(
        recipe_main(
            __doc__,
            {"paper": (PAPER, PAPER_VARIANTS), "smoke": (SMOKE, SMOKE_VARIANTS)},
            layout="fig4",
            title="Random labels: collapse vs width (Fig. 4)",
            default_output="runs/random_labels",
        )
    )
