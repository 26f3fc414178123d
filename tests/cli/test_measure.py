"""`nc-keras measure`: a directory of checkpoints into a CSV table."""

import csv
import sys

import keras
import numpy as np
import pytest

from nc_keras import collapse
from nc_keras.cli import main

K = 4


def conv_model():
    """Small conv net; GlobalAveragePooling2D is the "features" layer."""
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling2D(name="features")(h)
    return keras.Model(inputs, keras.layers.Dense(K, name="classifier")(h))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8, 8, 3)).astype("float32")
    y = np.arange(60) % K
    np.savez(tmp_path / "data.npz", x=x, y=y)
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    model = conv_model()
    # Saved out of order, with names whose lexical order is not epoch order;
    # each with different weights.
    for name in ("epoch_10.keras", "final.keras", "epoch_2.keras", "epoch_1.keras"):
        model.set_weights([w + 0.3 * rng.normal(size=w.shape) for w in model.get_weights()])
        model.save(checkpoints / name)
    (checkpoints / "notes.txt").write_text("not a checkpoint")
    return tmp_path, x, y


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_measure_writes_csv_in_epoch_order(run_dir, capsys):
    tmp_path, x, y = run_dir
    out = tmp_path / "nc.csv"
    code = main(["measure", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data.npz"),
                 "--output", str(out), "--batch-size", "16"])
    assert code == 0
    rows = read_rows(out)
    assert [r["checkpoint"] for r in rows] == [
        "epoch_1.keras", "epoch_2.keras", "epoch_10.keras", "final.keras"]
    assert [r["epoch"] for r in rows] == ["1", "2", "10", ""]
    for row in rows:
        model = keras.saving.load_model(tmp_path / "ckpt" / row["checkpoint"])
        h = keras.ops.convert_to_numpy(
            keras.Model(model.input, model.get_layer("features").output)(x))
        kernel = model.get_layer("classifier").kernel
        bias = model.get_layer("classifier").bias
        expected = collapse.metrics(h, y, keras.ops.convert_to_numpy(kernel).T,
                                    keras.ops.convert_to_numpy(bias))
        assert int(row["num_samples"]) == 60
        for key in collapse.METRIC_KEYS:
            # unc3 divides by the mean cosine, near 0 for these untrained
            # models: it amplifies the float32 differences of the two paths.
            rel = 1e-3 if key == "unc3" else 1e-5
            assert float(row[key]) == pytest.approx(expected[key], rel=rel, abs=1e-7), key
    printed = capsys.readouterr().out
    assert "| checkpoint" in printed and f"wrote {out}" in printed


def test_measure_default_output_and_no_ncc(run_dir, tmp_path):
    run, _, _ = run_dir
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for path in (run / "ckpt").glob("*.keras"):
        (ckpt / path.name).symlink_to(path)
    assert main(["measure", str(ckpt), "--data", str(run / "data.npz"),
                 "--ncc", "none", "--max-samples", "30"]) == 0
    rows = read_rows(ckpt / "collapse.csv")
    assert len(rows) == 4
    assert all(row["ncc_mismatch"] == "nan" and row["num_samples"] == "30" for row in rows)


def test_user_errors_are_one_line(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 3)))
    cases = [
        ([str(tmp_path / "missing"), "--data", "x.npz"], "is not a directory"),
        ([str(tmp_path), "--data", "x.npz"], "no .keras files"),
    ]
    (tmp_path / "ckpt").mkdir()
    conv_model().save(tmp_path / "ckpt" / "epoch_1.keras")
    cases += [
        ([str(tmp_path / "ckpt"), "--data", str(tmp_path / "bad.npz")], "lacks array(s) ['y']"),
        ([str(tmp_path / "ckpt"), "--data", str(tmp_path / "nope.npz")], "no such file"),
        ([str(tmp_path / "ckpt"), "--data", "no_such_dataset"], "dataset"),
    ]
    for argv, message in cases:
        assert main(["measure", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_measure_dataset_name_goes_through_nc_keras_data(run_dir, tmp_path, monkeypatch):
    """A dataset name is loaded by nc_keras.data.load, unshuffled (faked here)."""
    import types

    import tensorflow as tf

    import nc_keras

    run, x, y = run_dir
    calls = []

    def load(name, split="train", batch_size=128, data_dir=None,
             samples_per_class=None, shuffle=None, **kwargs):
        calls.append(dict(name=name, split=split, batch_size=batch_size,
                          data_dir=data_dir, samples_per_class=samples_per_class,
                          shuffle=shuffle))
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)

    fake = types.ModuleType("nc_keras.data")
    fake.load = load
    monkeypatch.setitem(sys.modules, "nc_keras.data", fake)
    monkeypatch.setattr(nc_keras, "data", fake, raising=False)
    assert main(["measure", str(run / "ckpt"), "--data", "cifar10", "--split", "test",
                 "--data-dir", "/somewhere", "--samples-per-class", "3",
                 "--batch-size", "32", "--ncc", "none", "-o", str(tmp_path / "out.csv")]) == 0
    assert calls == [dict(name="cifar10", split="test", batch_size=32, data_dir="/somewhere",
                          samples_per_class=3, shuffle=False)]
    rows = read_rows(tmp_path / "out.csv")
    assert [row["num_samples"] for row in rows] == ["60"] * 4


def test_measure_real_dataset_name(tmp_path):
    pytest.importorskip("nc_keras.data")
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(3, 3, strides=4)(inputs)
    h = keras.layers.GlobalAveragePooling2D(name="features")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="classifier")(h))
    model.save(tmp_path / "epoch_3.keras")
    assert main(["measure", str(tmp_path), "--data", "random_pixels",
                 "--samples-per-class", "3", "--split", "test"]) == 0
    rows = read_rows(tmp_path / "collapse.csv")
    assert rows[0]["num_samples"] == "30" and rows[0]["epoch"] == "3"
    assert np.isfinite(float(rows[0]["nc1"]))


def test_measure_names_features_classifier_and_layers(run_dir, capsys):
    tmp_path, _, _ = run_dir
    out = tmp_path / "layers.csv"
    arguments = ["measure", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data.npz"),
                 "--output", str(out), "--ncc", "none"]
    code = main(arguments + ["--features", "features", "--classifier", "classifier",
                             "--layers", "features"])
    assert code == 0
    for row in read_rows(out):
        # The classifier's input measured as a layer is the features themselves.
        assert float(row["nc1/features"]) == pytest.approx(float(row["nc1"]), rel=1e-9)
        assert {"means_etf_error/features", "trace_ratio/features"} <= set(row)
    assert main(arguments + ["--layers", "featurs"]) == 2
    error = capsys.readouterr().err
    assert "no layer 'featurs'" in error and "Close names: 'features'" in error


# --- failures keep what was there, and say what is wrong in one line ---


def _measure(run_dir, *extra, checkpoints=None, data=None):
    tmp_path, _, _ = run_dir
    return main(["measure", str(checkpoints or tmp_path / "ckpt"),
                 "--data", str(data or tmp_path / "data.npz"), "--batch-size", "16", *extra])


@pytest.mark.parametrize("failure", ["bad --classifier", "cut checkpoint"])
def test_measure_failure_leaves_the_earlier_csv_and_creates_none(run_dir, tmp_path, capsys, failure):
    src, _, _ = run_dir
    earlier = tmp_path / "r.csv"
    earlier.write_text("checkpoint,nc1\nold.keras,0.5\n")
    if failure == "bad --classifier":
        extra, checkpoints = ("--classifier", "no_such_layer"), None
    else:  # a copy cut short, after a good one: the good row must not be half-written
        checkpoints = tmp_path / "ckpt"
        checkpoints.mkdir()
        (checkpoints / "epoch_1.keras").write_bytes((src / "ckpt" / "epoch_1.keras").read_bytes())
        whole = (src / "ckpt" / "epoch_2.keras").read_bytes()
        (checkpoints / "epoch_2.keras").write_bytes(whole[: len(whole) // 2])
        extra = ()
    for output in (earlier, tmp_path / "new.csv"):
        assert _measure(run_dir, "-o", str(output), *extra, checkpoints=checkpoints) == 2
        err = capsys.readouterr().err
        assert err.startswith("nc-keras measure: error: ") and err.count("\n") == 1, err
    assert earlier.read_text() == "checkpoint,nc1\nold.keras,0.5\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["r.csv"]
    if failure == "cut checkpoint":
        assert f"{checkpoints / 'epoch_2.keras'} is truncated or corrupt" in err
        assert "not found" not in err.lower()


def test_measure_npz_with_object_arrays_or_truncated_is_one_line(run_dir, tmp_path, capsys):
    _, x, y = run_dir
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=x, y=np.array([str(v) for v in y], dtype=object))
    assert _measure(run_dir, "-o", str(tmp_path / "a.csv"), data=objects) == 2
    err = capsys.readouterr().err
    assert err == (f"nc-keras measure: error: {objects}: array 'y' holds Python objects (dtype "
                   "object), which nc_keras does not load (they would run code); save plain "
                   "numeric arrays x and y\n")
    cut = tmp_path / "cut.npz"
    np.savez(cut, x=x, y=y)
    cut.write_bytes(cut.read_bytes()[:-200])
    assert _measure(run_dir, "-o", str(tmp_path / "b.csv"), data=cut) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nc-keras measure: error: {cut} is truncated or corrupt (") and err.count("\n") == 1
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()


def test_measure_ood_data_adds_nc5(run_dir, tmp_path, capsys):
    """--ood-data: nc5 and nc5/<layer> equal the mean |cosine| computed by hand."""
    run, x, y = run_dir
    ood = np.random.default_rng(1).uniform(0, 2, size=(24, 8, 8, 3)).astype("float32")
    np.savez(tmp_path / "ood.npz", x=ood)  # x alone: out-of-distribution data has no labels
    out = tmp_path / "nc5.csv"
    assert _measure(run_dir, "--ood-data", str(tmp_path / "ood.npz"), "--ncc", "none",
                    "--layers", "features", "--output", str(out)) == 0
    rows = read_rows(out)
    assert len(rows) == 4
    for row in rows:
        model = keras.saving.load_model(run / "ckpt" / row["checkpoint"])
        extractor = keras.Model(model.input, model.get_layer("features").output)
        h = keras.ops.convert_to_numpy(extractor(x)).astype(np.float64)
        ood_mean = keras.ops.convert_to_numpy(extractor(ood)).astype(np.float64).mean(axis=0)
        means = np.stack([h[y == k].mean(axis=0) for k in range(K)])
        cosines = means @ ood_mean / (np.linalg.norm(means, axis=1) * np.linalg.norm(ood_mean))
        expected = np.abs(cosines).mean()
        assert float(row["nc5"]) == pytest.approx(expected, rel=1e-5)
        assert float(row["nc5/features"]) == pytest.approx(expected, rel=1e-5)
    assert _measure(run_dir, "--ood-split", "test") == 2
    assert "--ood-split needs --ood-data" in capsys.readouterr().err
    assert _measure(run_dir, "--ood-data", str(tmp_path / "missing.npz")) == 2
    assert "no such file" in capsys.readouterr().err
