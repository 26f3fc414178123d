"""Neural collapse under other losses: CE, MSE, label smoothing and focal loss.

Four runs of one setting that differ only in the training loss (`--loss` of
`nc-keras train`; nc_keras.train.losses): cross-entropy; MSE, (1/2)||z - e_y||^2
on one-hot targets, averaged over samples (Zhou et al., ICML 2022); label
smoothing, CE against (1 - 0.1) e_y + 0.1/K; focal loss, -(1 - p_y)^2 log p_y
(Lin et al. 2017). All four collapse (NC1-NC3 fall) at similar test accuracy
(Zhou et al., NeurIPS 2022, "Are all losses created equal?").

    python recipes/nc_losses.py --preset paper --data-dir DATA    # GPU, hours
    python recipes/nc_losses.py --preset smoke --data-dir DATA

The paper preset is the setting of Sec. 4.1 (ResNet18, CIFAR-10, SGD lr 0.05,
batch 128, 200 epochs, weight decay 5e-4); the smoke preset an MLP (width
256, depth 3) on 100 real MNIST images per class for 20 epochs.
"""

import sys

from nc_keras.cli.recipe import recipe_main

if __name__ == "__main__":
    # The presets, variants and figure are data: nc_keras.presets.RECIPES["nc_losses"].
    sys.exit(recipe_main("nc_losses", __doc__))
