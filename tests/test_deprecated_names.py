"""Every renamed public name still works for one release, with a DeprecationWarning
that names its replacement and points at the caller's line."""

import warnings

import keras
import numpy as np
import pytest

from nc_keras import collapse, models, ufm
from nc_keras.callbacks import NeuralCollapse, load_history
from nc_keras.cli import main


def tiny_model():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(hidden))


def tiny_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 6)).astype("float32"), np.arange(30) % 3


def deprecated(match):
    """pytest.warns for a DeprecationWarning attributed to this test file."""
    return pytest.warns(DeprecationWarning, match=match)


def assert_points_here(record):
    ours = [w for w in record if "deprecated and will be removed" in str(w.message)]
    assert ours and all(w.filename == __file__ for w in ours)


def test_neural_collapse_former_arguments_and_attributes(tmp_path):
    data = tiny_data()
    with pytest.warns(DeprecationWarning) as record:
        callback = NeuralCollapse(data, test_data=data, every=2, history_path=str(tmp_path),
                                  layer_reduction="flatten")
    assert_points_here(record)
    messages = " ".join(str(w.message) for w in record)
    for old, new in (("test_data", "validation_data"), ("every", "freq"),
                     ("history_path", "history_dir"), ("layer_reduction", "pooling")):
        assert f"NeuralCollapse({old}=)" in messages and f"use {new}=" in messages
    assert (callback.validation_data, callback.freq, callback.history_dir, callback.pooling) == (
        data, 2, str(tmp_path), "flatten")
    for old, new in (("test_data", "validation_data"), ("every", "freq"),
                     ("history_path", "history_dir"), ("layer_reduction", "pooling")):
        with deprecated(rf"NeuralCollapse\.{old} is deprecated.*NeuralCollapse\.{new}"):
            assert getattr(callback, old) is getattr(callback, new)
    with pytest.raises(TypeError, match="both every= .* and freq="):
        NeuralCollapse(data, every=1, freq=1)


def test_neural_collapse_new_names_do_not_warn(tmp_path):
    data = tiny_data()
    with warnings.catch_warnings():
        # Ours only: the backends raise DeprecationWarnings of their own.
        warnings.filterwarnings("error", ".*deprecated and will be removed", DeprecationWarning)
        callback = NeuralCollapse(data, validation_data=data, freq=2, history_dir=str(tmp_path),
                                  pooling="mean", ncc="exact")
        model = tiny_model()
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.fit(*data, epochs=2, verbose=0, callbacks=[callback])
    saved = load_history(tmp_path)
    assert saved["epoch"].tolist() == [2]


def test_load_history_former_argument(tmp_path):
    data = tiny_data()
    model = tiny_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(*data, epochs=1, verbose=0, callbacks=[NeuralCollapse(data, history_dir=tmp_path)])
    with deprecated(r"load_history\(history_path=\) is deprecated.*use history_dir="):
        assert load_history(history_path=tmp_path)["epoch"].tolist() == [1]


def test_measure_ncc_given_is_previous():
    model, data = tiny_model(), tiny_data()
    probe = collapse.probes.probe(model)
    exact, stats, _ = collapse.measure(probe, data, ncc="exact")
    with deprecated(r"measure\(ncc='given'\) is deprecated.*use ncc='previous'") as record:
        given, _, _ = collapse.measure(probe, data, ncc="given", ncc_means=stats.class_means)
    assert_points_here(record)
    # Against the final means of the same data, the one-pass count is the exact one.
    assert given["ncc_mismatch"] == exact["ncc_mismatch"]
    previous, _, _ = collapse.measure(probe, data, ncc="previous")  # no means: exact
    assert previous["ncc_mismatch"] == exact["ncc_mismatch"]
    with pytest.raises(ValueError, match=r"ncc must be one of \('previous', 'exact', 'none'\)"):
        collapse.measure(probe, data, ncc="approximate")


def test_pooling_former_names():
    model, data = tiny_model(), tiny_data()
    new = collapse.measure_model(model, data, layers=["hidden"], pooling="flatten")
    with deprecated(r"measure_model\(layer_reduction=\) is deprecated.*use pooling=") as record:
        old = collapse.measure_model(model, data, layers=["hidden"], layer_reduction="flatten")
    assert_points_here(record)
    assert old == new
    with deprecated(r"probe\(reduction=\) is deprecated.*use pooling="):
        collapse.probes.probe(model, reduction="mean")
    with deprecated(r"feature_extractor\(layer_reduction=\) is deprecated.*use pooling="):
        collapse.feature_extractor(model, layer_reduction="mean")
    assert collapse.probes.LAYER_REDUCTIONS == collapse.probes.POOLINGS == ("mean", "flatten")
    with pytest.raises(ValueError, match=r"pooling must be one of \('mean', 'flatten'\)"):
        collapse.measure_model(model, data, pooling="max")


def test_ufm_solve_former_lr():
    arguments = dict(method="sgd", steps=20, batch_size=6, polish=False, record_metrics=False)
    new = ufm.solve(3, 3, 4, learning_rate=0.2, **arguments)
    with deprecated(r"solve\(lr=\) is deprecated.*use learning_rate=") as record:
        old = ufm.solve(3, 3, 4, lr=0.2, **arguments)
    assert_points_here(record)
    np.testing.assert_array_equal(old.W, new.W)
    other = ufm.solve(3, 3, 4, learning_rate=0.05, **arguments)
    assert not np.array_equal(other.W, new.W)  # the rate reaches the solver


def test_ufm_checks_module_moved_to_validation():
    import importlib
    import sys

    sys.modules.pop("nc_keras.ufm.checks", None)
    with deprecated(r"nc_keras\.ufm\.checks is deprecated.*use nc_keras\.validation"):
        checks = importlib.import_module("nc_keras.ufm.checks")
    assert checks.count(4.0, "n") == 4


@pytest.mark.parametrize(
    "builder, former, expected",
    [
        (models.mlp, (8, 2, 4), dict(width=8, depth=2, classes=4)),
        (models.resnet18_adapt, (2, 5), dict(width=2, classes=5)),
    ],
)
def test_builders_former_positional_order(builder, former, expected):
    with deprecated(rf"passing .* to {builder.__name__}\(\) by position is deprecated") as record:
        model = builder(*former, input_shape=(8, 8, 3))
    assert_points_here(record)
    assert model.get_layer("classifier").kernel.shape[1] == expected["classes"]
    keyword = builder(expected["classes"], width=expected["width"], input_shape=(8, 8, 3),
                      **({"depth": expected["depth"]} if "depth" in expected else {}))
    assert keyword.count_params() == model.count_params()
    with pytest.raises(TypeError, match="multiple values for num_classes"):
        builder(*former, num_classes=3)


def test_resnet_arguments_after_num_classes_are_keyword_only():
    with deprecated(r"passing num_classes, input_shape to resnet18\(\) by position"):
        model = models.resnet18(3, (16, 16, 3), stem="cifar")
    assert model.input_shape == (None, 16, 16, 3)
    assert model.get_layer("classifier").kernel.shape[1] == 3


def test_cli_former_options(tmp_path, capsys):
    figure = tmp_path / "ufm.png"
    code = main(["ufm", "--classes", "3", "--dim", "2", "--per-class", "4", "--method", "sgd",
                 "--lr", "0.2", "--steps", "10", "--no-polish", "--hessian-k", "0",
                 "--output", str(figure)])
    captured = capsys.readouterr()
    assert code == 0 and figure.exists()
    assert "UFM K=3 d=2 n=4" in captured.out
    for old, new in (("--classes", "--num-classes"), ("--dim", "--feature-dim"),
                     ("--per-class", "--samples-per-class"), ("--lr", "--learning-rate")):
        assert f"{old} is deprecated and will be removed in the next release; use {new}" \
            in captured.err


def test_cli_measure_former_options(tmp_path, capsys):
    x, y = tiny_data()
    np.savez(tmp_path / "data.npz", x=x, y=y)
    tiny_model().save(tmp_path / "epoch_1.keras")
    arguments = ["measure", str(tmp_path / "epoch_1.keras"), "--data", str(tmp_path / "data.npz")]
    assert main(arguments + ["-o", str(tmp_path / "new.csv"), "--ncc", "none",
                             "--layers", "hidden", "--pooling", "flatten"]) == 0
    assert main(arguments + ["-o", str(tmp_path / "old.csv"), "--no-ncc",
                             "--layers", "hidden", "--layer-reduction", "flatten"]) == 0
    err = capsys.readouterr().err
    assert "--no-ncc is deprecated and will be removed in the next release; use --ncc none" in err
    assert "--layer-reduction is deprecated" in err and "use --pooling" in err
    assert (tmp_path / "old.csv").read_text() == (tmp_path / "new.csv").read_text()
    assert ",nan," in (tmp_path / "old.csv").read_text()  # no NCC pass
