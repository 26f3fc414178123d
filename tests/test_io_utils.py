"""Atomic file writing: the old file or the new one, never a torn one."""

import os
import stat

import numpy as np
import pytest

from nc_keras import io_utils, run_folder


def test_written_files_get_plain_open_permissions(tmp_path):
    path = tmp_path / "a.txt"
    io_utils.write_text(path, "x")
    plain = tmp_path / "b.txt"
    plain.write_text("x")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "log.csv"
    io_utils.write_text(path, "old")
    with pytest.raises(RuntimeError):
        with io_utils.atomic_writer(path) as out:
            out.write("new, half")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["log.csv"]


def test_save_npz_round_trips(tmp_path):
    path = tmp_path / "sub" / "a.npz"
    io_utils.save_npz(path, x=np.arange(3), y=np.eye(2))
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["x"], [0, 1, 2])
        np.testing.assert_array_equal(saved["y"], np.eye(2))
    assert os.listdir(path.parent) == ["a.npz"]


def test_run_folder_still_offers_the_writers():
    # The names moved to io_utils; code importing them from run_folder still works.
    assert run_folder.atomic_writer is io_utils.atomic_writer
    assert run_folder.save_npz is io_utils.save_npz
