"""Corrupted or odd data input: refused by name, nothing half-cached, hidden entries ignored."""

import dataclasses
import gzip
import logging
import re
import tarfile
import warnings

from PIL import Image
import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import download, image_tree
from nc_keras.train import train
from nc_keras.cli import main


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


def test_data_real_cifar10_tarball_reads_whole(shared_data):
    members = image_tree.tarball_images(shared_data / "cifar10-jpg.tar.gz")
    assert {split: len(found) for split, found in members.items()} == {"train": 50_000, "test": 10_000}


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
