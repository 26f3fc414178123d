"""Figure 4: collapse on random labels grows with network width (Sec. 4.2).

CIFAR-10 with every label replaced by a fixed random balanced assignment
(`--dataset random_pixels` for images of uniform random pixels instead),
SGD (lr 0.01, batch 64, weight decay 1e-4, momentum 0.9), 200 epochs.
ResNet18 of width k (stages k, 2k, 4k, 8k, 3x3 stem) and MLPs
(Linear-BN-ReLU): wider networks reach zero training error and stronger
collapse. The paper's text gives no list of widths; the paper preset takes
ResNet18 widths 8-64 and MLPs of width 512-2048, depth 4.

    python recipes/random_labels.py --preset paper --data-dir DATA    # GPU, hours
    python recipes/random_labels.py --preset smoke --data-dir DATA

The smoke preset fits MLPs of three widths to 50 random-label images per
class: minutes on a CPU.
"""

import sys

from nc_keras.cli.recipe import recipe_main

if __name__ == "__main__":
    # The presets, variants and figure are data: nc_keras.presets.RECIPES["random_labels"].
    sys.exit(recipe_main("random_labels", __doc__))
