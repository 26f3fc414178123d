"""Build `nc_keras/assets/mnist_subset.npz`, the MNIST subset shipped in the package.

It lets `nc_keras.data.load("mnist_subset")` (and `make demo`) run on a fresh
clone with no network and no other data: the first 100 training and the
first 50 test images of each digit, in the order of the original IDX files,
as uint8 arrays `x_train` (1000, 28, 28), `y_train` (1000,), `x_test`
(500, 28, 28), `y_test` (500,), saved with `np.savez_compressed` (0.25 MB).

Source and licence: the MNIST database by Yann LeCun, Corinna Cortes and
Christopher J.C. Burges (http://yann.lecun.com/exdb/mnist/), made available
under the Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0);
the subset is redistributed under the same licence.

Usage:
    python scripts/make_mnist_subset.py IDX_DIR [--train-per-class 100] [--test-per-class 50]

IDX_DIR holds the four IDX files, gzipped or raw.
"""

import argparse
from pathlib import Path

import numpy as np

from nc_keras.data.pipeline import first_per_class
from nc_keras.data.readers import IdxFiles, find_idx, read_idx

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "nc_keras" / "assets" / "mnist_subset.npz"


def read(idx_dir, stem):
    path = find_idx(idx_dir, stem)
    if path is None:
        raise SystemExit(f"{stem}[.gz] not found in {idx_dir}")
    return read_idx(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("idx_dir", type=Path, help="folder holding the four MNIST IDX files")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    arrays = {}
    per_class = {"train": args.train_per_class, "test": args.test_per_class}
    for split, *stems in IdxFiles().stems:
        images, labels = (read(args.idx_dir, stem) for stem in stems)
        keep = first_per_class(labels, per_class[split], num_classes=10)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[keep], labels[keep]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    sizes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): {sizes}")


if __name__ == "__main__":
    main()
