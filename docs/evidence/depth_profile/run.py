"""NC1 against depth: a small ResNet18 on real MNIST, 4 stage outputs + features.

    KERAS_BACKEND=torch python docs/evidence/depth_profile/run.py \
        --data-dir DATA --output-dir docs/evidence/depth_profile
    nc-keras plot --layout depth docs/evidence/depth_profile \
        -o docs/evidence/depth_profile/figure.png

Writes log.csv (nc1/<stage> columns next to nc1), nc_history/ and
tensorboard/ into the output folder, as `nc-keras train` lays a run out.
"""

import argparse

import keras

from nc_keras import callbacks, data, models, optimizers
from nc_keras.run_folder import RunFolder

STAGES = ["layer1_1_out", "layer2_1_out", "layer3_1_out", "layer4_1_out"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding the MNIST IDX files")
    parser.add_argument("--output-dir", default="docs/evidence/depth_profile")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--samples-per-class", type=int, default=100)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    load = dict(data_dir=args.data_dir, samples_per_class=args.samples_per_class)
    train = data.load("mnist", "train", 64, **load)
    train_eval = data.load("mnist", "train", 256, shuffle=False, **load)
    test_eval = data.load("mnist", "test", 256, shuffle=False, data_dir=args.data_dir,
                          samples_per_class=50)
    model = models.resnet18_adapt(width=args.width, num_classes=10, input_shape=(32, 32, 3))
    model.compile(
        optimizer=optimizers.SGD(learning_rate=0.05, momentum=0.9, weight_decay=5e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    folder = RunFolder(args.output_dir)
    model.fit(train, epochs=args.epochs, verbose=2, callbacks=[
        callbacks.NeuralCollapse(train_eval, test_eval, layers=STAGES,
                                 history_path=str(folder.nc_history)),
        callbacks.EpochCSVLogger(str(folder.log)),  # after NeuralCollapse: reads its logs
        keras.callbacks.TensorBoard(str(folder.tensorboard)),
    ])


if __name__ == "__main__":
    main()
