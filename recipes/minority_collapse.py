"""Minority collapse: class-imbalanced CIFAR-10, learned vs fixed simplex-ETF classifier.

Half the classes (the majority) keep n_A training images each, the other
half (the minority) n_A / R (Fang et al., PNAS 2021, "Exploring deep neural
networks via layer-peeled model: minority collapse in imbalanced training").
With a learned classifier the minority rows w_k draw together: their mean
pairwise cosine (minority_cosine) rises from -1/(K-1) towards 1, and the
minority classes' test accuracy (minority_accuracy, on the balanced test
set) falls. A fixed simplex-ETF classifier (Sec. 4.3) keeps every pair at
-1/(K-1). summary.md gives both numbers and the per-class test accuracy.

    python recipes/minority_collapse.py --preset paper --data-dir DATA    # GPU, hours
    python recipes/minority_collapse.py --preset smoke --data-dir DATA

The paper preset is ResNet18 on CIFAR-10 in the setting of Sec. 4.1 with
R = 100 (5000 and 50 images per class); the smoke preset an MLP (width 256,
depth 3) on 200 and 10 images per class (R = 20), 50 test images per class,
20 epochs.
"""

import sys

from nc_keras.cli.recipe import recipe_main

if __name__ == "__main__":
    # The presets, variants and figure are data: nc_keras.presets.RECIPES["minority_collapse"].
    sys.exit(recipe_main("minority_collapse", __doc__))
