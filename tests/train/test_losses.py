"""nc_keras.train.losses: each loss against its NumPy formula, and training with it."""

import json
import math

import numpy as np
import pytest

import keras

from nc_keras.callbacks import read_csv_log
from nc_keras.train import LOSSES, make_loss, train

ALPHA, GAMMA = 0.2, 1.5


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def reference(loss, logits, labels):
    """The per-sample loss of the module docstring, averaged over the batch, in float64."""
    K = logits.shape[1]
    e_y = np.eye(K)[labels]
    log_p = _log_softmax(logits)
    log_p_y = log_p[np.arange(len(labels)), labels]
    per_sample = {
        "ce": -log_p_y,
        "mse": 0.5 * np.sum((logits - e_y) ** 2, axis=1),
        "label_smoothing": -np.sum(((1 - ALPHA) * e_y + ALPHA / K) * log_p, axis=1),
        "focal": -((1 - np.exp(log_p_y)) ** GAMMA) * log_p_y,
    }[loss]
    return per_sample.mean()


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_equals_its_formula_on_sparse_labels(loss):
    rng = np.random.default_rng(1)
    logits = (3 * rng.standard_normal((64, 7))).astype("float32")
    labels = rng.integers(0, 7, 64)
    function = make_loss(loss, label_smoothing=ALPHA, focal_gamma=GAMMA)
    expected = reference(loss, logits.astype(np.float64), labels)
    for y in (labels.astype("int32"), labels.reshape(-1, 1)):  # (B,) and (B, 1)
        value = keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(y), logits))
        np.testing.assert_allclose(value, expected, rtol=2e-5)


def test_special_cases_reduce_to_cross_entropy():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((16, 4)).astype("float32")
    labels = rng.integers(0, 4, 16).astype("int32")
    ce = keras.ops.convert_to_numpy(make_loss("ce")(labels, logits))
    for loss in (make_loss("label_smoothing", label_smoothing=0.0), make_loss("focal", focal_gamma=0.0)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loss(labels, logits)), ce, rtol=1e-6)


def test_losses_stay_finite_at_saturated_logits():
    logits = np.array([[80.0, -80.0, 0.0], [-80.0, 80.0, 0.0]], "float32")
    labels = np.array([1, 1], "int32")  # one confidently wrong, one confidently right
    for loss in LOSSES:
        value = float(keras.ops.convert_to_numpy(make_loss(loss)(labels, logits)))
        assert math.isfinite(value), loss


def test_bad_loss_settings_are_refused(small_config):
    with pytest.raises(ValueError, match="loss must be one of"):
        small_config(loss="hinge").resolved()
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        small_config(loss="label_smoothing", label_smoothing=1.0).resolved()
    with pytest.raises(ValueError, match="focal_gamma must be"):
        small_config(loss="focal", focal_gamma=-1.0).resolved()


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_and_config_records_it(tmp_path, small_config, loss):
    config = small_config(loss=loss, label_smoothing=ALPHA, focal_gamma=GAMMA, epochs=2,
                          lr_drop_every=0)
    history = train(config, verbose=0)
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (written["loss"], written["label_smoothing"], written["focal_gamma"]) == (loss, ALPHA, GAMMA)
    assert all(math.isfinite(v) for v in history["loss"] + history["nc1"])
    assert history["loss"][-1] < history["loss"][0]  # it is being minimized
    assert history["nc_accuracy"][-1] > 0.3


def test_lbfgs_minimizes_the_configured_loss(tmp_path, small_config):
    config = small_config(optimizer="lbfgs", loss="mse", batch_size=200, epochs=1,
                          learning_rate=None)
    history = train(config, verbose=0)
    log = read_csv_log(tmp_path / "run" / "log.csv")
    # The half squared error of the logged logits is at most (1/2)||e_y||^2 = 0.5
    # at z = 0; cross-entropy would start near log 10 = 2.3.
    assert 0 < log["loss"][0] < 0.5
    assert history["nc_accuracy"][-1] > 0.5
