"""Figure 3: neural collapse under SGD, Adam and L-BFGS (Sec. 4.1).

ResNet18 (ImageNet stem, as torchvision) on CIFAR-10 (or MNIST with
`--dataset mnist`), no augmentation, weight decay 5e-4, 200 epochs, lr / 10
every 40 epochs: SGD (momentum 0.9, lr 0.05, batch 128), Adam (lr 1e-3,
batch 64), L-BFGS (history 10, lr 0.1, batch 2048, line search). All three
drive NC1-NC4 towards zero.

    python recipes/nc_optimizers.py --preset paper --data-dir DATA     # GPU, hours
    python recipes/nc_optimizers.py --preset smoke --data-dir DATA

The smoke preset trains a narrow ResNet18 (width 8, 3x3 stem) on 100 MNIST
images per class for a few epochs.
"""

import sys

from nc_keras.cli.recipe import recipe_main

if __name__ == "__main__":
    # The presets, variants and figure are data: nc_keras.presets.RECIPES["nc_optimizers"].
    sys.exit(recipe_main("nc_optimizers", __doc__))
