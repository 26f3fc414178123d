"""Atomic file writing: a file is replaced whole, or not at all.

Every writer goes to a temporary file in the target's folder, then renames it
over the target (`os.replace`, atomic on one file system), so an
interruption leaves the old file or the new one, never a torn one.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_writer", "save_npz", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_writer(path, mode="w", **open_kwargs):
    """Opens a temporary file beside `path`; renames it onto `path` on success.

    On an exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file readable by its owner only; give it the
        # permissions a plain open() would (0666 less the umask).
        os.chmod(staging, 0o666 & ~_umask())
        with os.fdopen(handle, mode, **open_kwargs) as out:
            yield out
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staging)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_writer(path) as out:
        out.write(text)


def write_json(path, payload):
    """Writes `payload` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def save_npz(path, **arrays):
    """Saves `arrays` into the `.npz` file `path` atomically."""
    with atomic_writer(path, "wb") as out:
        np.savez(out, **arrays)
