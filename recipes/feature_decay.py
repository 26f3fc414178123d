"""Appendix B: weight decay on the features H and the last layer (eq. (3)).

Two ResNet18 runs on CIFAR-10 with SGD (momentum 0.9, lr 0.05, batch 128,
200 epochs, lr / 10 every 40 epochs): the paper's default, coupled weight
decay 5e-4 on all parameters, against the unconstrained feature model's
penalty, CE + lambda/2 (||W||^2 + ||b||^2) + lambda_H/2 ||H||^2 with no decay
on the backbone. H are the raw penultimate features (the public reference
code penalized L2-normalized features, a constant with zero gradient).

    python recipes/feature_decay.py --preset paper --data-dir DATA    # GPU, hours
    python recipes/feature_decay.py --preset smoke --data-dir DATA

The smoke preset uses a narrow ResNet18 (width 8) and 100 MNIST images per
class.
"""

import sys

from nc_keras.cli.recipe import recipe_main

if __name__ == "__main__":
    # The presets, variants and figure are data: nc_keras.presets.RECIPES["feature_decay"].
    sys.exit(recipe_main("feature_decay", __doc__))
