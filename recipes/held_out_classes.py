"""Collapse through depth, against OOD data and on held-out classes (MNIST digits 0-4 vs 5-9).

An MLP (nc_keras.models.mlp) is trained on the digits 0-4 of the MNIST
subset bundled with nc_keras (100 training images per digit: works
offline). At every epoch `NeuralCollapse` measures, in one pass per data
set, NC1, the NCC accuracy and the numerical rank of every hidden layer
(`layers=`), and NC5 against the test images of the digits 5-9 as
out-of-distribution data (`ood_data=`; Ammar et al., ICLR 2024); a small
callback measures the held-out digits 5-9 in the trained features with
`nc_keras.collapse.transfer_cdnv` (CDNV and 5-shot NCC accuracy; Galanti et
al., ICLR 2022). At the end, the NECO score's AUROC separates the test
images of 0-4 from those of 5-9 and from uniform random pixels.

    KERAS_BACKEND=torch python recipes/held_out_classes.py --output-dir OUT
    nc-keras plot --layout depth OUT -o OUT/figure.png

Writes OUT/log.csv (one row per epoch: the NC keys, "heldout_cdnv",
"heldout_ncc_accuracy", "heldout_few_shot_accuracy"), OUT/nc_history/ and
OUT/summary.json (the final held-out metrics and the NECO AUROCs).
"""

import argparse
import importlib.resources
import json
import os
import sys

import keras
import numpy as np

from nc_keras import callbacks, collapse, models, optimizers
from nc_keras.io_utils import atomic_writer
from nc_keras.run_folder import RunFolder

IN_CLASSES = (0, 1, 2, 3, 4)
HELD_OUT = (5, 6, 7, 8, 9)


def mnist_subset():
    """(x_train, y_train, x_test, y_test): the bundled subset, normalized, (N, 28, 28, 1)."""
    with importlib.resources.files("nc_keras").joinpath("assets/mnist_subset.npz").open("rb") as f:
        with np.load(f) as npz:
            arrays = {key: npz[key] for key in npz.files}

    def images(x):
        return ((x.astype("float32") / 255.0 - 0.1307) / 0.3081)[..., None]

    return (images(arrays["x_train"]), arrays["y_train"].astype("int32"),
            images(arrays["x_test"]), arrays["y_test"].astype("int32"))


class HeldOutCollapse(keras.callbacks.Callback):
    """Logs `collapse.transfer_cdnv` of the held-out classes at every epoch end."""

    def __init__(self, data, classes, shots=5):
        super().__init__()
        self.data, self.classes, self.shots = data, list(classes), shots
        self.last = None

    def on_epoch_end(self, epoch, logs=None):
        self.last = collapse.transfer_cdnv(self.model, self.data, self.classes, shots=self.shots)
        logs = {} if logs is None else logs
        logs.update({"heldout_cdnv": self.last["cdnv"],
                     "heldout_ncc_accuracy": self.last["ncc_accuracy"],
                     "heldout_few_shot_accuracy": self.last["few_shot_accuracy"]})
        print(f"epoch {epoch + 1}: accuracy {logs.get('accuracy', float('nan')):.3f}, "
              f"nc1 {logs.get('nc1', float('nan')):.3g}, nc5 {logs.get('nc5', float('nan')):.3f}, "
              f"held-out cdnv {self.last['cdnv']:.3g}, "
              f"{self.shots}-shot accuracy {self.last['few_shot_accuracy']:.3f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--output-dir", required=True, help="run folder to write (must not exist)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    parser.add_argument("--width", type=int, default=128, help="MLP width (default: 128)")
    parser.add_argument("--depth", type=int, default=4, help="MLP hidden layers (default: 4)")
    parser.add_argument("--shots", type=int, default=5,
                        help="support images per held-out digit for the few-shot accuracy (default: 5)")
    args = parser.parse_args(argv)
    if os.path.exists(args.output_dir):
        parser.error(f"{args.output_dir} exists: choose a new --output-dir")

    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = mnist_subset()
    train_in = np.isin(y_train, IN_CLASSES)
    test_in = np.isin(y_test, IN_CLASSES)
    train = (x_train[train_in], y_train[train_in])
    test = (x_test[test_in], y_test[test_in])
    ood = x_test[~test_in]  # the held-out digits' test images
    held_out = (x_train[~train_in], y_train[~train_in])
    noise = ((np.random.default_rng(0).uniform(size=ood.shape).astype("float32") - 0.1307)
             / 0.3081)

    model = models.mlp(len(IN_CLASSES), width=args.width, depth=args.depth,
                       input_shape=(28, 28, 1))
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05, momentum=0.9, weight_decay=5e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    folder = RunFolder(args.output_dir)
    hidden = [f"relu{index}" for index in range(1, args.depth)]  # relu<depth>: the features
    held = HeldOutCollapse(held_out, HELD_OUT, args.shots)
    model.fit(*train, epochs=args.epochs, batch_size=64, verbose=0, callbacks=[
        callbacks.NeuralCollapse(train, test, layers=hidden, ood_data=ood,
                                 history_dir=str(folder.nc_history)),
        held,
        callbacks.EpochCSVLogger(str(folder.log)),  # after both: reads their logs
    ])
    neco = collapse.NECO(model, train)
    scores = {"id_test": neco(test[0]), "held_out_digits": neco(ood), "random_pixels": neco(noise)}
    summary = {
        "held_out": held.last,
        "neco_num_directions": int(neco.components.shape[1]),
        "neco_auroc_vs_held_out_digits": collapse.auroc(scores["id_test"], scores["held_out_digits"]),
        "neco_auroc_vs_random_pixels": collapse.auroc(scores["id_test"], scores["random_pixels"]),
        "mean_neco_score": {name: float(np.mean(value)) for name, value in scores.items()},
    }
    with atomic_writer(os.path.join(args.output_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
