"""Figure 5: learned vs fixed simplex-ETF classifier, and d = K (Sec. 4.3).

ResNet50 (3x3 stem, no max-pool) on CIFAR-10 with augmentation, SGD
(momentum 0.9, lr 0.05, batch 128, weight decay 5e-4, lr / 10 every 40
epochs, 200 epochs), four variants: learned classifier (d = 2048), fixed
ETF, learned with d = K = 10, fixed ETF with d = K. The paper finds all four
on par (~95% test accuracy) with the same collapse.

    python recipes/fixed_etf_resnet50.py --preset paper --data-dir DATA   # GPU, hours
    python recipes/fixed_etf_resnet50.py --preset smoke --data-dir DATA

The smoke preset trains a narrow ResNet18 (width 8, 3x3 stem) on 100 images
per class, batch 32, for 6 epochs: under 3 minutes on a 2-core CPU, where
all four variants learn at the same pace (docs/README.md).
"""

import sys

from nc_keras.cli.recipe import recipe_main

if __name__ == "__main__":
    # The presets, variants and figure are data: nc_keras.presets.RECIPES["fixed_etf"].
    sys.exit(recipe_main("fixed_etf", __doc__))
