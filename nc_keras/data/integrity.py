"""Checks that a dataset's files were read whole and hold what they should.

A download or copy cut short must fail, not load as a smaller dataset: a
CIFAR-10 tarball cut at 99.5% used to load 9,717 test images (horse: 717)
and cache their decode. So the readers read every file to its end, turn the
errors of a cut or damaged file into a `CorruptDataError` naming it
(`reading`), and check what they read against the catalogue entry
(`Expected`): labels in range, the size of each split and, for a balanced
dataset (CIFAR-10), of each class. Decode caches are written only after
these checks passed.
"""

import contextlib
import dataclasses
import lzma
import pickle
import tarfile
import zlib

import numpy as np

REFETCH = "delete it and download or copy it again"


class CorruptDataError(ValueError):
    """A data file is truncated, corrupt or not the dataset's; the message names it."""


@contextlib.contextmanager
def reading(path, member=None):
    """Raise `CorruptDataError` naming `path` for the errors of a cut or damaged file.

    gzip, bz2 and lzma raise `EOFError` when their stream ends early, and
    tarfile "unexpected end of data"; neither message names the file.
    `member`: the archive member being read, named too. Missing files and
    permission errors pass unchanged.
    """
    inside = f" inside member {member}" if member else ""
    try:
        yield
    except EOFError as error:
        raise CorruptDataError(f"{path} is truncated{inside} ({error}): {REFETCH}") from error
    except tarfile.ReadError as error:
        problem = "truncated" if "unexpected end" in str(error) else "corrupt"
        raise CorruptDataError(f"{path} is {problem}{inside} ({error}): {REFETCH}") from error
    except (OSError, zlib.error, lzma.LZMAError, pickle.UnpicklingError) as error:
        # gzip.BadGzipFile and bz2's "Invalid data stream" are OSErrors
        # without an errno; one with an errno is the file system's (missing
        # file, no permission) and passes unchanged.
        if isinstance(error, OSError) and error.errno is not None:
            raise
        raise CorruptDataError(f"{path} is corrupt{inside} ({type(error).__name__}: {error}): {REFETCH}") from error


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a public dataset's files must hold, from its catalogue entry.

    Attributes:
        title: the dataset's name in messages ("CIFAR-10").
        classes: class names in label order; labels are 0..len(classes)-1.
        sizes: ((split, examples), ...); a split not listed is not counted.
        balanced: every class of a split holds examples / len(classes).
        label: which of the files' label sets (CIFAR-100's "fine" or
            "coarse"); None for datasets with one.
    """

    title: str
    classes: tuple
    sizes: tuple = ()
    balanced: bool = False
    label: str | None = None

    def check(self, split, labels, where):
        """`CorruptDataError` naming `where` unless `labels` are what `split` must hold."""
        labels = np.asarray(labels)
        num_classes = len(self.classes)
        outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if outside.size:
            first = outside[0]
            raise CorruptDataError(
                f"{where} is corrupt: label {labels[first]} at position {first} is outside "
                f"0..{num_classes - 1} ({self.title} has {num_classes} classes): {REFETCH}"
            )
        size = dict(self.sizes).get(split)
        if size is None:
            return
        counts = np.bincount(labels, minlength=num_classes)
        per_class = size // num_classes if self.balanced else None
        if len(labels) == size and (per_class is None or np.all(counts == per_class)):
            return
        found = f"{len(labels):,} {split} examples"
        wanted = f"{size:,}"
        if per_class is not None:
            odd = ", ".join(f"{name}: {n:,}" for name, n in zip(self.classes, counts) if n != per_class)
            found += f" ({odd})"
            wanted += f" ({per_class:,} per class)"
        raise CorruptDataError(
            f"{where} holds {found} where {self.title} has {wanted}: it is truncated or not "
            f"{self.title}'s; {REFETCH} (for a subset or variant of your own, use the 'folder' dataset)"
        )
