"""Tests of nc_keras.data.safe_pickle: CIFAR batches are read without running code from them."""

import pickle

import numpy as np
import pytest

from nc_keras import data
from nc_keras.data import safe_pickle


class _WritesMarker:
    """Unpickling this calls exec, which writes a marker file: what a crafted batch does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def _batch(rows=10, labels_key=b"labels"):
    rng = np.random.default_rng(0)
    return {
        b"batch_label": b"testing batch 1 of 1",
        labels_key: list(range(rows)),
        b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(rows)],
    }


def test_a_crafted_batch_is_refused_and_runs_nothing(tmp_path, tiny_sizes):
    marker = tmp_path / "marker"
    crafted = pickle.dumps({**_batch(), b"data": _WritesMarker(marker)})
    # The file does run code under pickle.load (what the reader used before).
    pickle.loads(crafted)
    assert marker.read_text() == "ran"
    marker.unlink()

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps(_batch()))
    (folder / "test_batch").write_bytes(crafted)
    tiny_sizes(50, 10, "cifar10")
    with pytest.raises(data.CorruptDataError) as caught:
        data.load("cifar10", "test", data_dir=tmp_path)
    message = str(caught.value)
    assert str(folder / "test_batch") in message
    assert "builtins.exec" in message and "nothing in it ran" in message
    assert not marker.exists()
    # The untouched training batches still load.
    assert sum(len(y) for _, y in data.load("cifar10", "train", data_dir=tmp_path)) == 50


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_what_a_batch_holds_loads_in_every_protocol(tmp_path, protocol):
    batch = _batch()
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = safe_pickle.load_batch(path)
    assert loaded.keys() == batch.keys()
    assert loaded[b"batch_label"] == batch[b"batch_label"] and loaded[b"filenames"] == batch[b"filenames"]
    assert loaded[b"labels"] == batch[b"labels"]
    assert loaded[b"data"].dtype == np.uint8 and np.array_equal(loaded[b"data"], batch[b"data"])


def test_numpy_1_names_of_the_python_2_batches_load(tmp_path):
    # The website's batches were pickled by NumPy 1 (numpy.core.multiarray);
    # NumPy 2 writes numpy._core. GLOBAL names are newline-ended text.
    pickled = pickle.dumps(_batch(), protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in pickled
    path = tmp_path / "test_batch"
    path.write_bytes(pickled.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert np.array_equal(safe_pickle.load_batch(path)[b"data"], _batch()[b"data"])


@pytest.mark.parametrize(
    "value, asks_for",
    [
        (np.array([object(), 1], dtype=object), "dtype('O')"),
        (np.ma.masked_array([1, 2]), "numpy.ma.core"),
        ({1, 2}, "a set under b'extra'"),
        ([1.5], "a float under b'extra'"),
        (np.float64(1.0), "numpy._core.multiarray.scalar"),
    ],
)
def test_anything_else_is_refused_naming_the_file(tmp_path, value, asks_for):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({**_batch(), b"extra": value}))
    with pytest.raises(data.CorruptDataError, match="is not a CIFAR batch") as caught:
        safe_pickle.load_batch(path)
    assert str(path) in str(caught.value) and asks_for in str(caught.value)


def test_cut_or_padded_batches_are_corrupt(tmp_path):
    pickled = pickle.dumps(_batch())
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickled[: len(pickled) // 2])
    with pytest.raises(data.CorruptDataError, match=f"{path} is (truncated|corrupt)"):
        safe_pickle.load_batch(path)
    path.write_bytes(pickled + b"\x00")
    with pytest.raises(data.CorruptDataError, match="bytes follow the pickled batch"):
        safe_pickle.load_batch(path)
