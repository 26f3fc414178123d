"""The paper's experiments as data: configurations, variants and figures.

Each experiment of Sec. 4 compares a few variants of one training
configuration in one figure. A `Recipe` holds that as data: per preset a
base `TrainConfig` and its variants (dicts of `TrainConfig` fields, each with
a `label`), and the figure's layout, title and default output folder.
`RECIPES` lists them by name; `recipes/*.py` and
`nc_keras.cli.recipe.recipe_main` run them:

    python recipes/fixed_etf_resnet50.py --preset smoke --data-dir DATA

Every recipe has two presets: `paper`, the paper's settings (for a GPU,
hours), and `smoke`, a CPU-sized version (minutes) that still shows the
trend; Fig. 3 and Fig. 5 also have `cpu`, which reaches the terminal phase
(100% training accuracy) on a 2-core CPU. The paper's defaults that no preset repeats are `TrainConfig`'s (Sec.
4.1): SGD momentum 0.9, the learning rate divided by 10 every 40 epochs,
coupled weight decay on all parameters.
"""

import dataclasses

from nc_keras.train.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One experiment: presets of variants, and the figure that compares them.

    Attributes:
        presets: preset name -> (base `TrainConfig`, tuple of variant dicts).
        layout: the figure layout, a key of `nc_keras.plots.LAYOUTS`.
        title: the figure title.
        output_dir: the default output folder; a preset runs in
            `output_dir/<preset>`.
    """

    presets: dict
    layout: str
    title: str
    output_dir: str


# The setting of Sec. 4.1 (Fig. 3) that several experiments vary one field
# of: ResNet18 with the ImageNet stem on CIFAR-10, no augmentation, 200
# epochs, weight decay 5e-4 (learning rate and batch size: the optimizer's
# defaults, `nc_keras.train.OPTIMIZER_DEFAULTS`).
SEC41_PAPER = TrainConfig(
    dataset="cifar10", model="resnet18", stem="imagenet", epochs=200, weight_decay=5e-4
)
# Its CPU-sized version: a width-8 ResNet18 (3x3 stem) on 100 real MNIST
# images per class for a few epochs.
SEC41_SMOKE = TrainConfig(
    dataset="mnist", model="resnet18_adapt", width=8, samples_per_class=100,
    test_samples_per_class=50, epochs=6, weight_decay=5e-4,
)  # fmt: skip


def _sec41(variants):
    """Presets that vary the setting of Sec. 4.1 (paper) or its CPU version (smoke)."""
    return {"paper": (SEC41_PAPER, variants), "smoke": (SEC41_SMOKE, variants)}


# Fig. 3 (Sec. 4.1): SGD (lr 0.05, batch 128), Adam (lr 1e-3, batch 64) and
# L-BFGS (history 10, lr 0.1, batch 2048) all drive NC1-NC4 towards zero.
OPTIMIZER_VARIANTS = (
    {"label": "SGD", "optimizer": "sgd"},
    {"label": "Adam", "optimizer": "adam"},
    {"label": "L-BFGS", "optimizer": "lbfgs"},
)

# Fig. 3 at CPU size on real MNIST (100 images per class, width-8 ResNet18,
# 30 epochs, lr / 10 every 12). One full-batch L-BFGS epoch (20 iterations
# with line search) costs about ten SGD epochs, so L-BFGS runs 20 epochs
# (why 20: docs/evidence/nc_optimizers_cpu).
OPTIMIZERS_CPU = TrainConfig(
    dataset="mnist", model="resnet18_adapt", width=8, samples_per_class=100,
    test_samples_per_class=50, epochs=30, lr_drop_every=12, weight_decay=5e-4,
)  # fmt: skip
OPTIMIZER_CPU_VARIANTS = OPTIMIZER_VARIANTS[:2] + ({**OPTIMIZER_VARIANTS[2], "epochs": 20},)

# Fig. 4 (Sec. 4.2): random labels, SGD lr 0.01, batch 64, weight decay
# 1e-4. The paper gives no list of widths; the paper preset takes ResNet18
# widths 8-64 (stages k, 2k, 4k, 8k) and MLPs of width 512-2048, depth 4.
RANDOM_LABELS_PAPER = TrainConfig(
    dataset="cifar10_random", optimizer="sgd", learning_rate=0.01, batch_size=64,
    epochs=200, weight_decay=1e-4,
)  # fmt: skip
RANDOM_LABELS_SMOKE = TrainConfig(
    dataset="cifar10_random", samples_per_class=50, test_samples_per_class=20,
    optimizer="sgd", learning_rate=0.01, batch_size=64, epochs=30, lr_drop_every=0,
    weight_decay=1e-4,
)  # fmt: skip
RANDOM_LABELS_PAPER_VARIANTS = tuple(
    {"label": f"ResNet18 width {k}", "model": "resnet18_adapt", "width": k} for k in (8, 16, 32, 64)
) + tuple(
    {"label": f"MLP width {w}", "model": "mlp", "width": w, "depth": 4} for w in (512, 1024, 2048)
)
RANDOM_LABELS_SMOKE_VARIANTS = tuple(
    {"label": f"MLP width {w}", "model": "mlp", "width": w, "depth": 3} for w in (16, 64, 256)
)

# Fig. 5 (Sec. 4.3): ResNet50 (3x3 stem, no max-pool) on CIFAR-10 with
# augmentation, SGD lr 0.05, batch 128, weight decay 5e-4, 200 epochs; a
# learned or fixed simplex-ETF classifier, with the architecture's feature
# dimension (2048) or d = K = 10.
FIXED_ETF_PAPER = TrainConfig(
    dataset="cifar10", model="resnet50", stem="cifar", augment=True,
    optimizer="sgd", learning_rate=0.05, batch_size=128, epochs=200, weight_decay=5e-4,
)  # fmt: skip
FIXED_ETF_SMOKE = TrainConfig(
    dataset="cifar10", model="resnet18_adapt", width=8, augment=True,
    samples_per_class=100, test_samples_per_class=50,
    optimizer="sgd", learning_rate=0.05, batch_size=32, epochs=6, weight_decay=5e-4,
)  # fmt: skip
# Its CPU-sized version that reaches the terminal phase (100% training
# accuracy) on real CIFAR-10 in about 20 CPU-minutes: a width-8 ResNet18
# (3x3 stem) on 100 images per class, WITHOUT augmentation (unlike the
# paper: augmentation would keep a 2-core CPU from fitting the set), 60
# epochs, the learning rate / 10 every 24 (why 24: docs/evidence/fixed_etf_cpu).
FIXED_ETF_CPU = TrainConfig(
    dataset="cifar10", model="resnet18_adapt", width=8, augment=False,
    samples_per_class=100, test_samples_per_class=100,
    optimizer="sgd", learning_rate=0.05, batch_size=32, epochs=60, lr_drop_every=24,
    weight_decay=5e-4,
)  # fmt: skip
FIXED_ETF_VARIANTS = (
    {"label": "learned"},
    {"label": "fixed ETF", "classifier": "etf"},
    {"label": "learned d=K", "feature_dim": 10},
    {"label": "fixed ETF d=K", "classifier": "etf", "feature_dim": 10},
)

# Appendix B: coupled weight decay on all parameters against the
# unconstrained feature model's penalty on W, b and the raw features H
# (eq. (3)), with no decay on the backbone.
FEATURE_DECAY_VARIANTS = (
    {"label": "decay on all parameters", "decay": "all"},
    {"label": "decay on W, b and H", "decay": "features"},
)

# Other losses (Zhou et al., NeurIPS 2022, "Are all losses created equal?";
# Han et al., ICLR 2022, for MSE): cross-entropy, MSE on one-hot targets,
# label smoothing (alpha 0.1) and the focal loss (gamma 2) all collapse, at
# similar test accuracy. Paper: the setting of Sec. 4.1 (ResNet18, CIFAR-10,
# SGD). Smoke: an MLP on 100 real MNIST images per class, constant
# learning rate, 20 epochs: CPU minutes.
LOSS_VARIANTS = (
    {"label": "CE", "loss": "ce"},
    {"label": "MSE", "loss": "mse"},
    {"label": "label smoothing 0.1", "loss": "label_smoothing", "label_smoothing": 0.1},
    {"label": "focal 2", "loss": "focal", "focal_gamma": 2.0},
)
NC_LOSSES_SMOKE = TrainConfig(
    dataset="mnist", model="mlp", width=256, depth=3, samples_per_class=100,
    test_samples_per_class=50, optimizer="sgd", learning_rate=0.05, batch_size=128,
    epochs=20, lr_drop_every=0, weight_decay=5e-3,
)  # fmt: skip

# Minority collapse (Fang et al., PNAS 2021): K/2 majority classes of n_A
# examples and K/2 minority classes of n_B = n_A / R (their step
# imbalance). With a learned classifier the minority rows w_k draw together
# (their mean pairwise cosine rises towards 1) and the minority test
# accuracy falls; a fixed simplex-ETF classifier (Sec. 4.3) keeps them
# apart by construction. Paper: ResNet18 on CIFAR-10 (Sec. 4.1 setting),
# R = 100 (5000 and 50 examples per class). Smoke: an MLP (width 256,
# depth 3) on 200 and 10 real CIFAR-10 images per class (R = 20).
MINORITY_PAPER = dataclasses.replace(SEC41_PAPER, samples_per_class=[5000] * 5 + [50] * 5)
MINORITY_SMOKE = dataclasses.replace(
    NC_LOSSES_SMOKE, dataset="cifar10", samples_per_class=[200] * 5 + [10] * 5, batch_size=64
)
MINORITY_VARIANTS = (
    {"label": "learned"},
    {"label": "fixed ETF", "classifier": "etf"},
)

RECIPES = {
    "nc_optimizers": Recipe(
        presets={**_sec41(OPTIMIZER_VARIANTS), "cpu": (OPTIMIZERS_CPU, OPTIMIZER_CPU_VARIANTS)},
        layout="fig3",
        title="Neural collapse across optimizers (Fig. 3)",
        output_dir="runs/nc_optimizers",
    ),
    "random_labels": Recipe(
        presets={
            "paper": (RANDOM_LABELS_PAPER, RANDOM_LABELS_PAPER_VARIANTS),
            "smoke": (RANDOM_LABELS_SMOKE, RANDOM_LABELS_SMOKE_VARIANTS),
        },
        layout="fig4",
        title="Random labels: collapse vs width (Fig. 4)",
        output_dir="runs/random_labels",
    ),
    "fixed_etf": Recipe(
        presets={
            "paper": (FIXED_ETF_PAPER, FIXED_ETF_VARIANTS),
            "smoke": (FIXED_ETF_SMOKE, FIXED_ETF_VARIANTS),
            "cpu": (FIXED_ETF_CPU, FIXED_ETF_VARIANTS),
        },
        layout="fig5",
        title="Learned vs fixed simplex-ETF classifier (Fig. 5)",
        output_dir="runs/fixed_etf",
    ),
    "feature_decay": Recipe(
        presets=_sec41(FEATURE_DECAY_VARIANTS),
        layout="fig3",
        title="Weight decay on H and the last layer vs all parameters (appendix)",
        output_dir="runs/feature_decay",
    ),
    "nc_losses": Recipe(
        presets={"paper": (SEC41_PAPER, LOSS_VARIANTS), "smoke": (NC_LOSSES_SMOKE, LOSS_VARIANTS)},
        layout="fig3",
        title="Neural collapse under CE, MSE, label smoothing and focal loss",
        output_dir="runs/nc_losses",
    ),
    "minority_collapse": Recipe(
        presets={"paper": (MINORITY_PAPER, MINORITY_VARIANTS), "smoke": (MINORITY_SMOKE, MINORITY_VARIANTS)},
        layout="minority",
        title="Minority collapse under class imbalance: learned vs fixed ETF (Fang et al. 2021)",
        output_dir="runs/minority_collapse",
    ),
}

# `nc-keras demo`'s real-data part: an MLP (width 256, depth 3) on the MNIST
# subset shipped in nc_keras/assets (100 images per class), with a constant
# learning rate, so that 100% training accuracy and a 10x drop of NC1 (Sec.
# 4, Fig. 2) fit in well under a minute on a 2-core CPU.
DEMO_MNIST = TrainConfig(
    dataset="mnist_subset", model="mlp", width=256, depth=3, optimizer="sgd",
    learning_rate=0.05, batch_size=128, epochs=25, lr_drop_every=0, weight_decay=5e-3,
    label="MLP on MNIST subset",
)  # fmt: skip

