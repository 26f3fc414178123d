"""Reliability: what the library does with bad input and odd conditions, one section per concern.

Kills are simulated by a callback that raises at a chosen point, and by
putting files back as the kill would have left them.
"""

from pathlib import Path
import csv
import dataclasses
import gzip
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import warnings

from PIL import Image
import keras
import numpy as np
import pytest

from nc_keras import data, models, ufm
from nc_keras.callbacks import read_csv_log
from nc_keras.cli import main
from nc_keras.cli.recipe import recipe_main
from nc_keras.collapse import CollapseStatistics, metrics
from nc_keras.data import download, image_tree
from nc_keras.train import TrainConfig, TrainingDiverged, resume, train




# --- data: corrupted or odd input ---


@pytest.fixture
def _data_cache(tmp_path_factory, monkeypatch):
    """A throw-away decode cache (the decoded/ folder to look into)."""
    cache = tmp_path_factory.mktemp("nc_keras_cache")
    monkeypatch.setenv("NC_KERAS_CACHE", str(cache))
    return cache / "decoded"


def _data_expect_sizes(monkeypatch, train, test, *names):
    """Catalogue entries `names` expect a tiny stand-in's split sizes."""
    for name in names:
        entry = dataclasses.replace(data.DATASETS[name], split_sizes={"train": train, "test": test})
        monkeypatch.setitem(data.DATASETS, name, entry)


def _data_write_tree(root, classes, per_split=(2, 1), suffix=".jpg"):
    """train/<class>/NNNN<suffix> and test/<class>/... of random 32x32 RGB images."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_split):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:04d}{suffix}")


def _data_write_tarball(tmp_path, per_split=(2, 1)):
    """tmp_path/cifar10-jpg.tar.gz holding cifar10-jpg/{train,test}/<class>/*.jpg."""
    _data_write_tree(tmp_path / "tree" / "cifar10-jpg", data.CIFAR10_CLASSES, per_split)
    tarball = tmp_path / "cifar10-jpg.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "tree" / "cifar10-jpg", arcname="cifar10-jpg")
    return tarball


def _data_write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


def _data_write_mnist(folder, per_class=(3, 2)):
    """The four MNIST IDX files, gzipped, with `per_class` images per digit and split."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, count in zip(("train", "t10k"), per_class):
        labels = np.tile(np.arange(10, dtype=np.uint8), count)
        _data_write_idx(folder / f"{stem}-images-idx3-ubyte.gz", np.zeros((len(labels), 28, 28), np.uint8))
        _data_write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)


@pytest.mark.parametrize("packing", ["gzip cut at 99.5%", "tar cut between members"])
def test_data_cut_tarball_is_refused_and_nothing_is_cached(tmp_path, _data_cache, monkeypatch, packing):
    # A .tar.gz cut as an interrupted copy leaves it, and an uncompressed
    # tar cut at a member's header, which tarfile's stream mode took for
    # the end of the archive (9,717 test images of the real one loaded).
    _data_expect_sizes(monkeypatch, 20, 10, "cifar10")
    tarball = _data_write_tarball(tmp_path)
    if packing == "gzip cut at 99.5%":
        packed = tarball.read_bytes()
        tarball.write_bytes(packed[: int(len(packed) * 0.995)])
    else:
        with tarfile.open(tarball) as archive:
            horse = next(m for m in archive if m.name.endswith("test/horse/0000.jpg"))
        with gzip.open(tarball) as unpacked:
            tarball.write_bytes(unpacked.read()[: horse.offset])  # "r:*" reads it by content
    with pytest.raises(ValueError, match=rf"{re.escape(str(tarball))} is truncated") as caught:
        data.load("cifar10", "test", data_dir=tmp_path, download=False)
    assert isinstance(caught.value, data.CorruptDataError)
    assert "download or copy it again" in str(caught.value)
    assert not list(_data_cache.glob("*.npz"))


def test_data_cifar10_tarball_with_other_counts_is_refused(tmp_path, _data_cache, monkeypatch):
    # The real layout with 2 train and 1 test image per class: whole, but
    # not CIFAR-10's 5,000 / 1,000 per class.
    _data_write_tarball(tmp_path)
    with pytest.raises(ValueError, match=r"cifar10-jpg.tar.gz holds 20 train examples \(airplane: 2, .*truck: 2\) "
                       r"where CIFAR-10 has 50,000 \(5,000 per class\): it is truncated or not CIFAR-10's"):
        data.load("cifar10", "test", data_dir=tmp_path, download=False)
    assert not list(_data_cache.glob("*.npz"))
    # A class short of images (the cut tarball's horse: 717 of 1,000).
    _data_expect_sizes(monkeypatch, 20, 20, "cifar10")
    with pytest.raises(ValueError, match=r"holds 10 test examples \(airplane: 1, .*\) where CIFAR-10 has 20 \(2 per"):
        data.load("cifar10", "test", data_dir=tmp_path, download=False)
    _data_expect_sizes(monkeypatch, 20, 10, "cifar10")
    (tmp_path / "cifar10-jpg.tar.gz").unlink()
    test_dir = tmp_path / "tree" / "cifar10-jpg" / "test"
    (test_dir / "horse" / "0000.jpg").rename(test_dir / "ship" / "0001.jpg")
    (test_dir / "horse").rmdir()
    with pytest.raises(ValueError, match=r"holds 10 test examples \(horse: 0, ship: 2\) where CIFAR-10 has 10 \(1 per"):
        data.load("cifar10", "test", data_dir=tmp_path / "tree", download=False)
    assert not list(_data_cache.glob("*.npz"))


def test_data_corrupt_image_names_itself(tmp_path, _data_cache, monkeypatch):
    _data_write_tree(tmp_path, ["a", "b"], per_split=(3, 1), suffix=".png")
    bad = tmp_path / "train" / "b" / "0001.png"
    bad.write_bytes(bad.read_bytes()[:60])  # a PNG cut inside its pixel data
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))} is corrupt: it does not decode") as caught:
        data.load("folder", data_dir=tmp_path)
    assert isinstance(caught.value, data.CorruptDataError) and "0000.png" not in str(caught.value)
    # In a tarball: the member's name.
    _data_expect_sizes(monkeypatch, 20, 10, "cifar10")
    _data_write_tree(tmp_path / "tree" / "cifar10-jpg", data.CIFAR10_CLASSES)
    (tmp_path / "tree" / "cifar10-jpg" / "train" / "horse" / "0001.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    with tarfile.open(tmp_path / "cifar10-jpg.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "tree" / "cifar10-jpg", arcname="cifar10-jpg")
    with pytest.raises(ValueError, match=r"member cifar10-jpg/train/horse/0001.jpg of .*cifar10-jpg.tar.gz is corrupt"):
        data.load("cifar10", data_dir=tmp_path, download=False)
    assert not list(_data_cache.glob("*.npz"))


def test_data_truncated_gz_idx_names_its_file(tmp_path, monkeypatch):
    _data_expect_sizes(monkeypatch, 30, 20, "mnist")
    _data_write_mnist(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:-20])
    with pytest.raises(ValueError, match=rf"{re.escape(str(images))} is truncated") as caught:
        data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert isinstance(caught.value, data.CorruptDataError)


def test_data_idx_label_outside_the_classes_is_refused(tmp_path, monkeypatch):
    _data_expect_sizes(monkeypatch, 30, 20, "mnist")
    _data_write_mnist(tmp_path)
    labels = np.tile(np.arange(10, dtype=np.uint8), 2)
    labels[3] = 11
    _data_write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz is corrupt: label 11 at position 3 is outside 0..9"):
        data.load("mnist", "test", data_dir=tmp_path, download=False)


def test_data_mnist_idx_files_must_hold_all_of_mnist(tmp_path):
    # Whole files (the headers agree with the payloads) of 30 and 20 images.
    _data_write_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"holds 20 test examples where MNIST has 10,000: it is truncated"):
        data.load("mnist", "test", data_dir=tmp_path, download=False)


def test_data_folder_ignores_hidden_entries(tmp_path, _data_cache):
    _data_write_tree(tmp_path, ["cats", "dogs"], per_split=(2, 1), suffix=".png")
    # Jupyter's checkpoints would sort first and become class 0; macOS's
    # AppleDouble "._*" files and .DS_Store are not images either.
    _data_write_tree(tmp_path / "train" / ".ipynb_checkpoints", ["x"], per_split=(1, 0), suffix=".png")
    (tmp_path / "train" / "cats" / "._0000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "test" / ".DS_Store").write_bytes(b"\x00")
    description = data.info("folder", data_dir=tmp_path)
    assert description.class_names == ("cats", "dogs")
    assert description.split_sizes == {"train": 4, "test": 2}
    labels = np.concatenate([y.numpy() for _, y in data.load("folder", data_dir=tmp_path, shuffle=False)])
    assert labels.tolist() == [0, 0, 1, 1]


def test_data_empty_class_folder_is_refused(tmp_path, _data_cache):
    _data_write_tree(tmp_path, ["cats", "dogs"], per_split=(2, 1), suffix=".png")
    (tmp_path / "train" / "birds").mkdir()
    (tmp_path / "train" / "birds" / ".DS_Store").write_bytes(b"\x00")
    with pytest.raises(ValueError, match=rf"class folder {re.escape(str(tmp_path / 'train' / 'birds'))} holds no images"):
        data.load("folder", data_dir=tmp_path)


def test_data_tfds_probe_drops_only_its_variant_folder_warning(tmp_path, monkeypatch, caplog):
    import tensorflow_datasets as tfds

    caplog.set_level(logging.WARNING)
    _data_expect_sizes(monkeypatch, 30, 20, "mnist")
    _data_write_mnist(tmp_path)
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)  # e.g. left by a failed download
    data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert not [r for r in caplog.records if "Variant folder" in r.getMessage()]

    def builder_that_warns(name, data_dir):
        logging.getLogger("absl").warning("Variant folder %s has no %s", data_dir, "dataset_info.json")
        logging.getLogger("absl").warning("another warning")
        return tfds

    monkeypatch.setattr(tfds, "builder", builder_that_warns)
    caplog.clear()
    assert download.builder("mnist", str(tmp_path)) is tfds
    logging.getLogger("absl").warning("Variant folder %s has no %s", "elsewhere", "dataset_info.json")
    absl_messages = [r.getMessage() for r in caplog.records if r.name == "absl"]
    # Other warnings pass, and the filter is gone after the probe.
    assert absl_messages == ["another warning", "Variant folder elsewhere has no dataset_info.json"]


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "a key missing"])
def test_data_corrupt_cache_entry_is_named_discarded_and_rebuilt(tmp_path, _data_cache, monkeypatch, damage):
    _data_expect_sizes(monkeypatch, 20, 10, "cifar10")
    _data_write_tarball(tmp_path)
    _data_write_tree(tmp_path / "own", ["a", "b"], per_split=(2, 1), suffix=".png")

    def load_both():
        from nc_keras.data import sources

        # As a new process would: none of the in-memory copies.
        image_tree.decoded_tarball.cache_clear()
        image_tree.decoded_tree.cache_clear()
        sources._LOCAL_CACHE.clear()
        return [np.concatenate([x.numpy() for x, _ in data.load(name, "test", shuffle=False,
                                                                data_dir=folder, download=False)])
                for name, folder in (("cifar10", tmp_path), ("folder", tmp_path / "own"))]

    first = load_both()
    entries = sorted(_data_cache.glob("*.npz"))  # the tarball's; the tree's test and train
    assert len(entries) == 3
    intact = {entry: entry.read_bytes() for entry in entries}
    for entry in entries:
        if damage == "truncated":  # a kill or a full disk while copying the cache
            entry.write_bytes(intact[entry][: len(intact[entry]) // 2])
        elif damage == "not a zip":
            entry.write_bytes(b"\0" * 100)
        else:
            with np.load(entry) as arrays:
                kept = {key: arrays[key] for key in arrays.files if "labels" not in key}
            np.savez(entry, **kept)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_both()
    said = [str(w.message) for w in caught if "cache" in str(w.message)]
    assert len(said) == 3, "\n".join(said)
    for entry in entries:
        named = [message for message in said if message.startswith(f"decode cache entry {entry} is corrupt (")]
        assert len(named) == 1 and named[0].endswith("discarded; it is rebuilt from the source."), said
    for old, new in zip(first, again):
        np.testing.assert_array_equal(old, new)
    assert {entry: entry.read_bytes() for entry in entries} == intact  # rebuilt whole


def test_data_cache_path_through_a_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    _data_write_tree(tmp_path / "own", ["a", "b"], per_split=(2, 1), suffix=".png")
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("NC_KERAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data-dir", str(tmp_path / "own"), "--model", "mlp",
            "--epochs", "1", "--output-dir", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"nc-keras train: error: the decode cache folder {tmp_path / 'cache' / 'decoded'} "
                   f"cannot be created: {tmp_path / 'cache'} is a file; point $NC_KERAS_CACHE "
                   "(or $XDG_CACHE_HOME) at a folder\n")
    assert not out.exists()


def test_data_cache_that_cannot_be_written_only_warns(tmp_path, _data_cache, monkeypatch):
    import errno

    _data_write_tree(tmp_path, ["a", "b"], per_split=(2, 1), suffix=".png")

    def full_disk(path, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(image_tree, "save_npz", full_disk)
    image_tree.decoded_tree.cache_clear()
    with pytest.warns(UserWarning, match=r"could not write the decode cache entry .*No space left on device"):
        labels = np.concatenate([y.numpy() for _, y in data.load("folder", "test", data_dir=tmp_path)])
    assert sorted(labels.tolist()) == [0, 1]
    assert not list(_data_cache.glob("*"))


def test_data_real_cifar10_tarball_reads_whole(shared_data):
    members = image_tree.tarball_images(shared_data / "cifar10-jpg.tar.gz")
    assert {split: len(found) for split, found in members.items()} == {"train": 50_000, "test": 10_000}


# --- ufm: no hang, no false convergence ---

NAN = float("nan")
# A tiny instance (K, d, n) shared by the solver tests, so they compile once.
TINY = (3, 4, 2)
LAMBDAS = (ufm.DEFAULT_LAMBDA,) * 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ufm.METHODS)
def test_ufm_nan_start_stops_and_says_diverged(method):
    # Used to halve the gd step forever (every Armijo test fails on NaN).
    result = ufm.solve(*TINY, method=method, init_scale=NAN, record_metrics=False)
    assert result.diverged and not result.converged
    assert result.status == "diverged" and "diverged" in result.message
    assert result.steps == 0 and result.polish_steps == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["sgd", "adam"])
def test_ufm_nan_learning_rate_stops_before_and_without_the_polish(method):
    result = ufm.solve(*TINY, method=method, learning_rate=NAN, steps=50, record_metrics=False)
    assert result.diverged and not result.converged and result.status == "diverged"
    # It stops at the first record (one epoch), and the polish never starts.
    assert result.steps < 50 and result.polish_steps == 0
    assert math.isnan(result.final["objective"])


@pytest.mark.timeout(120)
def test_ufm_blown_up_sgd_is_diverged_not_converged():
    # Used to polish from f ~ 1e136 until the line search's round-off stop,
    # then report converged=True.
    result = ufm.solve(*TINY, method="sgd", learning_rate=1e6, steps=20, record_metrics=False)
    assert result.diverged and not result.converged
    assert result.polish_steps == 0


@pytest.mark.timeout(120)
def test_ufm_converged_needs_both_the_gap_and_the_gradient():
    early = ufm.solve(*TINY, method="gd", gap_tolerance=1e-2, record_metrics=False)
    assert early.status == "gap_reached" and not early.converged and not early.diverged
    unpolished = ufm.solve(*TINY, method="sgd", steps=3, polish=False, record_metrics=False)
    assert unpolished.status == "max_steps" and not unpolished.converged
    full = ufm.solve(*TINY, method="gd", record_metrics=False)
    assert full.converged and full.status == "converged" and not full.diverged
    assert abs(full.final["relative_gap"]) <= ufm.CONVERGED_RELATIVE_GAP


@pytest.mark.parametrize("value", [NAN, float("inf"), -1.0])
@pytest.mark.parametrize("position, name", [(0, "lambda_w"), (1, "lambda_h"), (2, "lambda_b")])
def test_ufm_optimum_and_solve_refuse_bad_lambdas(value, position, name):
    lambdas = list(LAMBDAS)
    lambdas[position] = value
    with pytest.raises(ValueError, match=name):
        ufm.optimum(3, 2, *lambdas)
    with pytest.raises(ValueError, match=name):
        ufm.solve(*TINY, *lambdas, method="gd")


@pytest.mark.parametrize(
    "position, name", [(0, "num_classes"), (1, "feature_dim"), (2, "n_per_class")]
)
def test_ufm_counts_must_be_whole_numbers(position, name):
    sizes = list(TINY)
    sizes[position] = 2.7
    with pytest.raises(ValueError, match=name):
        ufm.solve(*sizes, method="gd")
    if name != "feature_dim":
        with pytest.raises(ValueError, match=name):
            ufm.optimum(sizes[0], sizes[2], *LAMBDAS)
    # Whole numbers written as floats are the same problem.
    assert ufm.optimum(3.0, 2.0, *LAMBDAS) == ufm.optimum(3, 2, *LAMBDAS)


@pytest.mark.timeout(120)
def test_ufm_d_below_k_minus_1_warns_and_reports_no_gap():
    with pytest.warns(UserWarning, match="Theorem 3.1"):
        result = ufm.solve(4, 2, 2, method="lbfgs", record_metrics=False)
    assert result.optimum is None
    rows = result.trajectory
    assert all(math.isnan(row["gap"]) and math.isnan(row["relative_gap"]) for row in rows)
    assert math.isnan(result.gap_before_polish)
    # Judged on the gradient alone: f is stationary there, above Theorem 3.1's f*.
    assert result.converged and result.final["objective"] > ufm.optimum(4, 2, *LAMBDAS).value


@pytest.mark.parametrize(
    "option", [{"steps": 0}, {"steps": -3}, {"batch_size": 0}, {"batch_size": -1}]
)
def test_ufm_zero_or_negative_steps_and_batch_size_are_errors(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=name):
        ufm.solve(*TINY, method="sgd", record_metrics=False, **option)


@pytest.mark.parametrize("bad", [3, -1])
def test_ufm_objective_refuses_labels_outside_the_classes(bad):
    K, d, n = TINY
    W, H, b = ufm.random_start(K, d, n)
    labels = ufm.class_labels(K, n)
    labels[-1] = bad
    with pytest.raises(ValueError, match="labels"):
        ufm.objective(W, H, b, labels, *LAMBDAS)
    # One label short of H's columns is refused too.
    with pytest.raises(ValueError, match="labels"):
        ufm.objective(W, H, b, ufm.class_labels(K, n)[:-1], *LAMBDAS)


# --- resume ---

README = Path(__file__).resolve().parents[1] / "README.md"


def _config(tmp_path, name="run", **changes):
    settings = dict(
        dataset="mnist_subset", model="mlp", width=16, depth=2, epochs=3, batch_size=50,
        learning_rate=0.05, samples_per_class=10, test_samples_per_class=5, seed=3,
        output_dir=str(tmp_path / name),
    )  # fmt: skip
    settings.update(changes)
    return TrainConfig(**settings)


class _Crash(keras.callbacks.Callback):
    """Raises at the end of `epoch`, after the run's own callbacks (backup included)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated kill")


class _CopyBackup(keras.callbacks.Callback):
    """Copies the backup as it is at the end of `epoch` to `target`."""

    def __init__(self, epoch, source, target):
        super().__init__()
        self.epoch, self.source, self.target = epoch, source, target

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            shutil.copytree(self.source, self.target)


def _epochs_seen():
    seen = []
    return seen, keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))


def _tensorboard_steps(log_dir, tag="epoch_loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return sorted(event.step for event in accumulator.Tensors(tag))



def test_resume_refuses_other_settings_and_names_them(tmp_path):
    config = _config(tmp_path, epochs=2)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[_Crash(0)], verbose=0)
    written = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(ValueError, match="learning_rate 0.05 -> 0.1, weight_decay") as refused:
        train(_config(tmp_path, epochs=2, learning_rate=0.1, weight_decay=1e-3, width=32), verbose=0)
    assert "width 16 -> 32" in str(refused.value)
    assert (tmp_path / "run" / "config.json").read_text() == written
    # A new label names the run differently; it is the same run.
    seen, recorder = _epochs_seen()
    train(_config(tmp_path, epochs=2, label="renamed"), callbacks=[recorder], verbose=0)
    assert seen == [1]


def test_resume_after_a_kill_before_the_backup_matches_an_uninterrupted_run(tmp_path):
    # Augmentation and ncc_mismatch's "previous" class means are covered too.
    uninterrupted = train(_config(tmp_path, "whole", augment=True), verbose=0)

    config = _config(tmp_path, augment=True)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[_CopyBackup(0, out / "backup", tmp_path / "backup_0"), _Crash(1)],
              verbose=0)
    # As a kill between the logging of epoch 1 and its backup leaves it:
    # epoch 1 in log.csv, TensorBoard and nc_history, the backup of epoch 0.
    shutil.rmtree(out / "backup")
    shutil.copytree(tmp_path / "backup_0", out / "backup")
    assert read_csv_log(out / "log.csv")["epoch"] == [0, 1]

    seen, recorder = _epochs_seen()
    resumed = train(config, callbacks=[recorder], verbose=0)
    assert seen == [1, 2]
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-5, err_msg=key)
    for writer in ("train", "validation"):
        assert _tensorboard_steps(out / "tensorboard" / writer, "epoch_nc1") == [0, 1, 2], writer


def test_resume_data_epoch_depends_on_seed_and_epoch_only():
    def batches(epochs):
        stream = data.load("mnist_subset", "train", 20, samples_per_class=5, augment=True,
                           seed=3, epochs=epochs)  # fmt: skip
        return [(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)) for x, y in stream]

    from_start, from_two = batches(range(3)), batches(range(2, 3))
    assert len(from_start) == 9 and len(from_two) == 3
    for (x, y), (x2, y2) in zip(from_start[6:], from_two):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(from_start[0][1], from_start[3][1])  # reshuffled per epoch


def test_resume_after_fit_only_writes_the_summary(tmp_path):
    config = _config(tmp_path, epochs=2)
    history = train(config, verbose=0)
    out = tmp_path / "run"
    # A kill after fit removed the backup, before the summary and figure.
    (out / "summary.json").unlink()
    (out / "figure.png").unlink()
    seen, recorder = _epochs_seen()
    assert train(config, callbacks=[recorder], verbose=0) == history
    assert seen == []
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert (out / "figure.png").exists()


# NaN features and weights warn in the NC metrics and the figure, as they should.
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
def test_resume_marks_a_diverged_run_and_trains_it_again(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(_config(tmp_path, learning_rate=1e30), verbose=0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    log = read_csv_log(out / "log.csv")
    assert not math.isfinite(log["loss"][-1])
    # Not a finished run: training again starts over, with other settings too.
    history = train(_config(tmp_path, learning_rate=0.05), verbose=0)
    assert history["epoch"] == [0, 1, 2] and all(map(math.isfinite, history["loss"]))
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_resume_prune_tensorboard_drops_later_steps_and_a_torn_record(tmp_path):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(4):
            tf.summary.scalar("epoch_loss", float(step), step=step)
    writer.close()
    (event_file,) = tmp_path.glob("*tfevents*")
    with open(event_file, "ab") as handle:
        handle.write(b"\x30\x00\x00\x00\x00\x00\x00\x00torn")  # a write cut short
    resume.prune_tensorboard(tmp_path, 2)
    assert _tensorboard_steps(tmp_path) == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == [event_file.name]


# --- one writer per run folder ---

_HOLDER = """
import sys, time
from pathlib import Path
import keras
from nc_keras.train import TrainConfig, train

class Pause(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        Path(sys.argv[2]).write_text("paused")
        time.sleep(600)  # until killed

settings = dict(dataset="mnist_subset", model="mlp", width=16, depth=2, epochs=2, batch_size=50,
                samples_per_class=10, test_samples_per_class=5, seed=3, output_dir=sys.argv[1])
train(TrainConfig(**settings), callbacks=[Pause()], verbose=0)
"""


def test_lock_second_writer_is_refused_and_a_dead_holders_lock_taken_over(tmp_path, capsys):
    out, paused = tmp_path / "run", tmp_path / "paused"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), str(paused)],
                              env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
                              stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # the holder is in its first epoch's end
            if paused.exists() or holder.poll() is not None:
                break
            time.sleep(0.1)
        assert paused.exists(), holder.stderr.read()[-3000:] if holder.poll() is not None else "timeout"
        log = (out / "log.csv").read_text()
        # The same command again (a requeued job while the first one lives).
        args = ["train", "--dataset", "mnist_subset", "--model", "mlp", "--width", "16",
                "--depth", "2", "--epochs", "2", "--batch-size", "50", "--samples-per-class", "10",
                "--test-samples-per-class", "5", "--seed", "3", "--output-dir", str(out), "--quiet"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"{out} is in use by another run (pid {holder.pid} on host " in err
        assert (out / "log.csv").read_text() == log
        holder.kill()  # SIGKILL: no clean-up ran; the lock file names a dead holder
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert json.loads((out / "run.lock").read_text())["pid"] == holder.pid
    with pytest.warns(UserWarning, match=rf"taking over the lock of a run that is no longer "
                                         rf"running \(pid {holder.pid} on host "):
        assert main(args) == 0
    assert read_csv_log(out / "log.csv")["epoch"] == [0, 1]
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert not (out / "run.lock").exists()


def test_lock_refused_run_into_a_new_folder_leaves_nothing(tmp_path):
    from nc_keras.run_folder import RunFolder, RunFolderLocked

    out = tmp_path / "a" / "b"
    with RunFolder(out).lock():
        assert json.loads((out / "run.lock").read_text())["pid"] == os.getpid()
        # A second lock in the same process: flock locks are per open file.
        with pytest.raises(RunFolderLocked, match=rf"{re.escape(str(out))} is in use by another run \(pid {os.getpid()}"):
            with RunFolder(out).lock():
                pass
    assert not (tmp_path / "a").exists()
    # A failure before the first write leaves no folder either.
    with pytest.raises(data.DataNotFoundError):
        train(_config(tmp_path, "c/d", dataset="folder", data_dir=str(tmp_path / "none")), verbose=0)
    assert not (tmp_path / "c").exists()


def test_recipe_removes_its_interrupted_figure_write(tmp_path):
    from nc_keras.train import train_variants

    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / ".figure.png-x1.tmp").write_bytes(b"")  # a kill during the figure's write
    (out / "a" / ".log.csv-y2.tmp").write_bytes(b"")  # the variant's, removed by its run
    train_variants(_config(tmp_path, epochs=1), [{"label": "a"}], out, verbose=0)
    assert (out / "figure.png").stat().st_size > 0
    assert not list(out.rglob("*.tmp"))


def test_lock_recipe_into_a_held_folder_is_refused(tmp_path, capsys):
    from nc_keras.run_folder import RunFolder

    out = tmp_path / "out"
    argv = ["--dataset", "mnist_subset", "--epochs", "1", "--output-dir", str(out), "--quiet"]
    with RunFolder(out).lock():
        assert recipe_main("nc_optimizers", "a recipe", argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {out} is in use by another run (pid {os.getpid()}") and error.count("\n") == 1
    assert not out.exists()


def _train_argv(config):
    """The `nc-keras train` command of a `_config`."""
    argv = ["train", "--quiet"]
    for name in ("dataset", "model", "width", "depth", "epochs", "batch_size", "learning_rate",
                 "samples_per_class", "test_samples_per_class", "seed", "output_dir"):
        argv += ["--" + name.replace("_", "-"), str(getattr(config, name))]
    return argv


@pytest.fixture(scope="module")
def _interrupted(tmp_path_factory):
    """A 3-epoch run killed after epoch 2 was logged and backed up."""
    tmp_path = tmp_path_factory.mktemp("interrupted")
    config = _config(tmp_path, epochs=3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(config, callbacks=[_Crash(1)], verbose=0)
    return tmp_path / "run"


def _copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return _config(tmp_path, epochs=3)


def test_resume_removes_the_interrupted_runs_temporary_files(_interrupted, tmp_path):
    config = _copy_of(_interrupted, tmp_path)
    out = tmp_path / "run"
    for left in (out / ".figure.png-k2j3.tmp", out / ".log.csv-9x.tmp",
                 out / "tensorboard" / "train" / ".pruning-77.tmp"):
        left.write_bytes(b"")  # a kill during the write
    seen, recorder = _epochs_seen()
    train(config, callbacks=[recorder], verbose=0)
    assert seen == [2]
    assert not list(out.rglob("*.tmp"))


def test_resume_torn_last_row_of_the_log_is_one_line(_interrupted, tmp_path, capsys):
    config = _copy_of(_interrupted, tmp_path)
    log = tmp_path / "run" / "log.csv"
    text = log.read_text()
    log.write_text(text[: text.rindex("\n", 0, -1) + 40] + "\n")  # the last row cut short
    assert main(_train_argv(config)) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"nc-keras train: error: {re.escape(str(log))} is torn: its line 3 has \d+ of "
                        r"the header's \d+ cells .*delete that line to train its epoch again on resume\n", err), err


@pytest.mark.parametrize("part", ["latest.weights.h5", "training_metadata.json"])
def test_resume_torn_backup_is_one_line_saying_what_to_do(_interrupted, tmp_path, capsys, part):
    config = _copy_of(_interrupted, tmp_path)
    torn = tmp_path / "run" / "backup" / part
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    assert main(_train_argv(config)) == 2
    err = capsys.readouterr().err
    backup = tmp_path / "run" / "backup"
    assert err.startswith(f"nc-keras train: error: the backup in {backup} is torn (")
    assert f"Delete {backup} and rerun to train the run again from its first epoch" in err
    assert err.count("\n") == 1


def test_full_disk_is_one_line_naming_the_folder_and_what_was_kept(_interrupted, tmp_path, capsys,
                                                                  monkeypatch):
    import errno

    from nc_keras.callbacks import EpochCSVLogger

    config = _copy_of(_interrupted, tmp_path)
    out = tmp_path / "run"

    def full(self, epoch, logs=None):
        raise OSError(errno.ENOSPC, "No space left on device", self.filename)

    monkeypatch.setattr(EpochCSVLogger, "on_epoch_end", full)
    assert main(_train_argv(config)) == 2
    err = capsys.readouterr().err
    assert err == (f"nc-keras train: error: cannot write {out / 'log.csv'}: No space left on device. "
                   f"{out} keeps its first 2 epoch(s), which rerunning the same command resumes "
                   "after (free space first).\n")


# --- training configuration ---


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("learning_rate", -0.1, "learning_rate must be > 0"),
        ("weight_decay", -5e-4, "weight_decay must be >= 0"),
        ("lr_drop_factor", 0.0, "lr_drop_factor must be > 0"),
        ("lr_drop_factor", -0.1, "lr_drop_factor must be > 0"),
        ("learning_rate", math.nan, "learning_rate must be a finite number"),
        ("weight_decay", math.inf, "weight_decay must be a finite number"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("samples_per_class", 0, "samples_per_class must be >= 1"),
    ],
)
def test_config_resolved_rejects_bad_numbers(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value}).resolved()


@pytest.mark.parametrize(
    "option, value",
    [("--batch-size", "0"), ("--learning-rate", "-0.05"), ("--weight-decay", "-1"),
     ("--lr-drop-factor", "0"), ("--weight-decay", "nan")],
)  # fmt: skip
def test_config_train_command_refuses_before_writing(tmp_path, capsys, option, value):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "mnist_subset", "--model", "mlp", "--width", "16",
            "--epochs", "1", "--quiet", "--output-dir", str(out), option, value]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("nc-keras train: error: ") and option in error
    assert not out.exists()


def test_config_output_path_must_be_a_writable_folder(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    targets = [a_file, a_file / "run"]
    if os.geteuid() != 0:  # root writes anywhere
        read_only = tmp_path / "read_only"
        read_only.mkdir(mode=0o555)
        targets.append(read_only / "run")
    for target in targets:
        argv = ["train", "--dataset", "mnist_subset", "--model", "mlp", "--epochs", "1",
                "--quiet", "--output-dir", str(target)]  # fmt: skip
        assert main(argv) == 2, target
        assert "error: output directory" in capsys.readouterr().err
        assert target == a_file or not target.exists()
    assert a_file.read_text() == "not a folder"


# --- new-user frictions ---


def test_friction_recipe_offline_error_names_the_option_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download, "host_reachable", lambda *args, **kwargs: False)  # offline
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "out"
    argv = ["--dataset", "mnist", "--data-dir", str(empty), "--output-dir", str(out), "--quiet"]
    assert recipe_main("nc_optimizers", "a recipe", argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "--data-dir" in error and "data_dir" not in error
    assert not out.exists()


def test_friction_default_output_dir_is_stated(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "where results are written (default: runs/run)" in " ".join(capsys.readouterr().out.split())
    assert "default `runs/run`" in README.read_text()


def test_friction_measure_accepts_one_keras_file(tmp_path, capsys):
    model = models.mlp(width=16, depth=1, num_classes=3, input_shape=(4, 4, 1))
    model.save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((30, 4, 4, 1)).astype("float32"),
             y=np.arange(30) % 3)
    assert main(["measure", str(tmp_path / "model.keras"), "--data", str(tmp_path / "data.npz")]) == 0
    with open(tmp_path / "collapse.csv", newline="") as handle:
        assert [row["checkpoint"] for row in csv.DictReader(handle)] == ["model.keras"]


@pytest.mark.parametrize("command", ["demo", "params"])
def test_friction_help_shows_single_percent_signs(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and "%" in text


def test_friction_demo_duration_in_help_and_readme_agree(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    in_help = re.search(r"about (\d+) minutes? on a 2-core CPU", capsys.readouterr().out)
    in_readme = re.search(r"`nc-keras demo`, about (\d+) minutes? on a 2-core CPU", README.read_text())
    assert in_help and in_readme and in_help.group(1) == in_readme.group(1)


def test_friction_load_model_needs_only_the_import_the_readme_names(tmp_path):
    assert "`import nc_keras` once before `keras.models.load_model(\"m.keras\")`\n  registers every" in README.read_text()
    # An ETF classifier (nc_keras layers) with the appendix's penalties (HalfL2).
    model = models.mlp(width=16, depth=1, classifier="etf", lambda_w=0.1, lambda_b=0.1, lambda_h=0.1)
    model.save(tmp_path / "model.keras")
    code = (
        "import keras, nc_keras\n"
        f"model = keras.models.load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(type(model.get_layer('classifier')).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("SimplexETF")


_REGISTERED = """
import importlib, json, pkgutil, sys
import keras
import nc_keras

def ours():
    return sorted(name for name in keras.saving.get_custom_objects() if name.startswith("nc_keras>"))

model = keras.models.load_model(sys.argv[1])  # with its optimizer and loss
after_import = ours()
for module in pkgutil.walk_packages(nc_keras.__path__, "nc_keras."):
    if ".cli" not in module.name and ".backend." not in module.name:
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as error:  # an optional extra (keras-hub, ...) not installed
            if (error.name or "").startswith("nc_keras"):
                raise
print(json.dumps({"optimizer": type(model.optimizer).__name__, "loss": type(model.loss).__name__,
                  "iterations": int(model.optimizer.iterations), "after_import": after_import,
                  "everything": ours()}))
"""


def test_friction_import_nc_keras_registers_every_custom_object(tmp_path):
    # What `nc-keras train --checkpoints` writes: the model compiled with
    # nc_keras's SGD and loss, the optimizer's state included.
    config = _config(tmp_path, epochs=1, checkpoints=True, loss="focal", classifier="etf",
                     decay="features")
    train(config, verbose=0)
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch_0001.keras"
    done = subprocess.run([sys.executable, "-c", _REGISTERED, str(checkpoint)], capture_output=True,
                          text=True, env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert (found["optimizer"], found["loss"], found["iterations"]) == ("SGD", "SparseFocalCrossentropy", 2)  # 100 samples, batch 50
    assert found["after_import"] == found["everything"]
    assert {"nc_keras>SGD", "nc_keras>Adam", "nc_keras>SimplexETF", "nc_keras>HalfL2",
            "nc_keras>FeatureDecay"} <= set(found["everything"])


def test_friction_mlp_accepts_vector_inputs():
    model = models.mlp(width=16, depth=1, num_classes=3, input_shape=(16,))
    assert model.output.shape == (None, 3)
    logits = model(np.ones((2, 16), "float32"))
    assert tuple(logits.shape) == (2, 3)
    with pytest.raises(ValueError, match="input_shape must be positive sizes"):
        models.mlp(width=16, depth=1, input_shape=(16, 0))


def problem(N=300, d=9, K=4, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), N // K)
    H = 3.0 * rng.normal(size=(K, d))[y] + spread * rng.normal(size=(N, d))
    return H, y, rng.normal(size=(K, d)), rng.normal(size=K)


def streamed(H, y, logits=None, batch=37):
    stats = CollapseStatistics(int(y.max()) + 1)
    for start in range(0, len(y), batch):
        part = slice(start, start + batch)
        stats.update(H[part], y[part], None if logits is None else logits[part])
    return stats


# --- collapse ---------------------------------------------------------------------


def test_collapse_logits_passed_as_labels_are_refused():
    # Old: any float (N, K) "labels" were argmaxed into labels.
    H, y, W, b = problem()
    logits = H @ W.T + b
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for wrong in (logits, probabilities, 0.9 * np.eye(4)[y] + 0.025):
        with pytest.raises(ValueError, match="exact one-hot"):
            metrics(H, wrong, W, b)
        with pytest.raises(ValueError, match="exact one-hot"):
            CollapseStatistics(4).update(H, wrong)
    # Exact one-hot rows, float or integer, are labels.
    expected = metrics(H, y, W, b)
    for one_hot in (np.eye(4)[y], np.eye(4, dtype=np.int32)[y]):
        assert metrics(H, one_hot, W, b) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("fault", ["W", "b"])
def test_collapse_nonfinite_classifier_gives_nan_predictions_and_names_it(fault):
    # Old: accuracy and ncc_mismatch counted argmax of NaN logits (class 0),
    # and a NaN W warned "W W^T is zero".
    H, y, W, b = problem()
    if fault == "W":
        W[1, 2] = np.nan
    else:
        b[0] = np.inf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = metrics(H, y, W, b)
        streaming = streamed(H, y, H @ W.T + b)
        streaming.update_ncc(H, H @ W.T + b, streaming.class_means)
        streaming = streaming.measure(W, b)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{fault} has NaN or infinite entries") for m in messages)
    assert not any("is zero" in m for m in messages)
    for out in (result, streaming):
        for key in ("accuracy", "ncc_mismatch", "nc4"):
            assert np.isnan(out[key]), key
        assert np.isfinite(out["nc1"]) and np.isfinite(out["cdnv"])
        assert np.isnan(out["nc2"]) == (fault == "W")


@pytest.mark.parametrize("key,scale_W,scale_H", [
    ("nc2", 1e100, 1.0), ("nc3", 1e160, 1.0), ("nc3_papyan", 1e160, 1.0),
    ("nc1", 1.0, 1e-160), ("nc1", 1.0, 1e160), ("trace_ratio", 1.0, 1e160),
    ("cdnv", 1.0, 1e-160),
])
def test_collapse_scale_invariant_metrics_stay_invariant(key, scale_W, scale_H):
    # Old: W W^T overflowed to inf (NaN nc2), squares of features x 1e160
    # overflowed and of features x 1e-160 underflowed.
    H, y, W, b = problem()
    expected = metrics(H, y, W, b)[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NC4 and the logits may overflow
        in_memory = metrics(scale_H * H, y, scale_W * W)[key]
        stream = streamed(scale_H * H, y).measure(scale_W * W)[key]
    assert in_memory == pytest.approx(expected, rel=1e-10, abs=0)
    assert stream == pytest.approx(expected, rel=1e-10, abs=0)


def test_collapse_logits_of_the_wrong_shape_are_refused_by_name():
    # Old: (B, K+1) logits counted argmax over the wrong classes; (B,) raised
    # an AxisError from inside numpy.
    H, y, W, b = problem()
    stats = CollapseStatistics(4)
    for wrong in (np.zeros((len(y), 5)), np.zeros(len(y)), np.zeros((len(y) - 1, 4))):
        with pytest.raises(ValueError, match="logits must have shape"):
            stats.update(H, y, wrong)
        with pytest.raises(ValueError, match="logits must have shape"):
            stats.update_ncc(H, wrong, np.zeros((4, 9)))


@pytest.mark.parametrize("offset", [5.0, 1e6, 1e7])
def test_collapse_deep_collapse_nc1_far_from_the_origin(offset):
    # Old: running means (and in-memory class means) at ~1e6 carried a
    # round-off of eps * 1e6, of the size of the within-class spread 1e-6:
    # 1.4e-6 (streaming) and 4.6e-6 (in memory) relative error at 1e6,
    # 1e-4 at 1e7.
    rng = np.random.default_rng(7)
    K, d, pairs, eps = 4, 8, 25, 1e-6
    centres = rng.normal(size=(K, d)) + offset
    v = rng.normal(size=(K, pairs, d))
    H = (centres[:, None, :] + eps * np.concatenate([v, -v], axis=1)).reshape(-1, d)
    y = np.repeat(np.arange(K), 2 * pairs)
    # Reference: the two-pass definition in extended precision on the stored H.
    Hx = H.astype(np.longdouble)
    M = np.stack([Hx[y == k].mean(axis=0) for k in range(K)])
    centred = Hx - M[y]
    sigma_w = np.asarray(centred.T @ centred / len(y), dtype=np.float64)
    Hbar = np.asarray(M - Hx.mean(axis=0), dtype=np.float64)
    exact = np.trace(sigma_w @ np.linalg.pinv(Hbar.T @ Hbar / K, rcond=1e-10,
                                              hermitian=True)) / K
    order = rng.permutation(len(y))  # classes mixed across batches
    W = rng.normal(size=(K, d))
    stream = streamed(H[order], y[order], batch=16).measure(W)["nc1"]
    assert stream == pytest.approx(exact, rel=1e-8, abs=0)
    assert metrics(H, y, W)["nc1"] == pytest.approx(exact, rel=1e-8, abs=0)


def test_collapse_num_classes_must_be_an_integer():
    # Old: CollapseStatistics(2.7) measured 2 classes. A whole number written
    # as a float is K, as everywhere else (nc_keras.validation).
    for wrong in (2.7, "3", float("nan"), True):
        with pytest.raises(ValueError, match="num_classes must be an integer"):
            CollapseStatistics(wrong)
    assert CollapseStatistics(np.int64(3)).num_classes == 3
    assert CollapseStatistics(3.0).num_classes == 3


# --- layers -----------------------------------------------------------------------


def test_layers_simplex_etf_sizes_must_be_integers():
    # Old: simplex_etf(2.7, 4) built a 2-class ETF.
    from nc_keras.layers import simplex_etf

    for wrong in ((2.7, 4), (3, 4.5), ("3", 4)):
        with pytest.raises(ValueError, match="must be an integer"):
            simplex_etf(*wrong)
    assert simplex_etf(np.int64(3), 4).shape == (4, 3)
    assert simplex_etf(3.0, 4.0).shape == (4, 3)


# --- small ones ---


@pytest.mark.parametrize("method", ["gd", "lbfgs"])
@pytest.mark.parametrize("learning_rate", [NAN, 0.1])
def test_small_learning_rate_of_a_line_search_method_is_refused(method, learning_rate):
    # Their steps come from a line search: a learning rate was silently ignored.
    with pytest.raises(ValueError, match=rf"learning_rate applies to methods sgd and adam; {method} "
                                         r"finds its steps by a line search"):
        ufm.solve(*TINY, method=method, learning_rate=learning_rate)


def test_small_ufm_command_refuses_learning_rate_with_gd(capsys):
    assert main(["ufm", "--method", "gd", "--learning-rate", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nc-keras ufm: error: --learning-rate applies to methods sgd and adam; "
                          "gd finds its steps by a line search") and err.count("\n") == 1, err


def test_small_objective_with_transposed_h_names_its_shape():
    K, d, N = 3, 4, 6
    rng = np.random.default_rng(0)
    W, H, b = rng.normal(size=(K, d)), rng.normal(size=(d, N)), np.zeros(K)
    labels = np.arange(N) % K
    expected = float(ufm.objective(W, H, b, labels, 1e-3, 1e-3, 1e-3))
    assert math.isfinite(expected)
    with pytest.raises(ValueError, match=r"H must have shape \(d, N\) = \(4, 6\), one column per sample; "
                                         r"got \(6, 4\) \(H transposed\?\)"):
        ufm.objective(W, H.T, b, labels, 1e-3, 1e-3, 1e-3)
    with pytest.raises(ValueError, match=r"H must have shape \(d, N\) = \(4, 6\), one column per sample; got \(5, 6\)$"):
        ufm.objective(W, rng.normal(size=(5, N)), b, labels, 1e-3, 1e-3, 1e-3)


def test_small_float_labels_message_states_the_rule():
    h = np.random.default_rng(0).normal(size=(4, 3))
    stats = CollapseStatistics(3)
    stats.update(h, np.array([0.0, 1.0, 2.0, 1.0], np.float32))  # whole numbers: accepted
    assert stats.num_samples == 4
    with pytest.raises(ValueError, match=r"^labels must be whole numbers \(integers, or floats such as 2\.0\); "
                                         r"got dtype float32 with 2 other value\(s\), e\.g\. \[0\.5, nan\]$"):
        stats.update(h, np.array([0.0, 0.5, np.nan, 1.0], np.float32))


@pytest.mark.parametrize("member", ["../train/cat/evil.jpg", "/abs/train/cat/evil.jpg",
                                    "cifar10-jpg/../../train/cat/evil.jpg"])
def test_small_tarball_member_outside_its_folder_is_refused(tmp_path, _data_cache, monkeypatch, member):
    _data_expect_sizes(monkeypatch, 20, 10, "cifar10")
    tarball = _data_write_tarball(tmp_path)
    with tarfile.open(tarball, "r:gz") as archive:
        members = [(info, archive.extractfile(info).read() if info.isfile() else None) for info in archive]
    extra = tmp_path / "tree" / "cifar10-jpg" / "train" / "cat" / "0000.jpg"
    with tarfile.open(tarball, "w:gz") as archive:
        for info, payload in members:
            archive.addfile(info, None if payload is None else __import__("io").BytesIO(payload))
        info = archive.gettarinfo(extra)
        info.name = member  # gettarinfo would strip a leading "/"
        with open(extra, "rb") as handle:
            archive.addfile(info, handle)
    with pytest.raises(data.CorruptDataError, match=rf"member {re.escape(member)} of {re.escape(str(tarball))} "
                                                    r"lies outside the archive's folder"):
        data.load("cifar10", "train", data_dir=tmp_path, download=False)
    assert not list(_data_cache.glob("*.npz"))


def test_small_ufm_figure_write_that_fails_keeps_the_earlier_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from nc_keras.ufm import plots as ufm_plots

    result = ufm.solve(*TINY, method="gd", steps=5, record_metrics=False)
    target = tmp_path / "ufm.png"
    target.write_bytes(b"the earlier figure")

    def interrupted(self, out, **kwargs):  # a Ctrl-C in the middle of the write
        out = open(out, "wb") if isinstance(out, (str, os.PathLike)) else out
        out.write(b"\x89PNG half")
        out.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ufm_plots.plot_trajectory(result, target)
    assert target.read_bytes() == b"the earlier figure"
    assert [p.name for p in tmp_path.iterdir()] == ["ufm.png"]


def test_small_benchmark_results_are_appended_whole_or_not_at_all(tmp_path):
    from nc_keras.reporting import append_results

    results = tmp_path / "results.md"
    results.write_text("# Earlier results\n")

    class Interrupted:  # the append stopped in the middle (a Ctrl-C while formatting)
        def __str__(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        append_results(results, "bench", "| a |", notes=Interrupted())
    assert results.read_text() == "# Earlier results\n"
    append_results(results, "bench", "| a |", notes="n")
    text = results.read_text()
    assert text.startswith("# Earlier results\n\n## bench\n\n") and text.endswith("\n\n| a |\n\nn\n")
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]
