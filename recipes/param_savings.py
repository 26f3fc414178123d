"""Prints the paper's trainable-parameter savings (Sec. 4.3).

    python recipes/param_savings.py          # a table
    python recipes/param_savings.py --json   # JSON rows

Fixed classifier on ImageNet (K=1000): ResNet50 8.01%, DenseNet169 11.76%;
d = K on CIFAR-10 (K=10): ResNet18 20.70%, ResNet50 4.45%.
"""

import sys

from nc_keras.cli import params

if __name__ == "__main__":
    sys.exit(params.main(description=__doc__))
