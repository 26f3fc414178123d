"""Tiles: K x K quantities of many classes in bounded memory.

At vocabulary scale (K = 50,257 tokens, d = 1,024) one K x K float64 array
takes 20 GB, and the K x d class means alone 412 MB. The metrics never form
either: every pairwise quantity (cosines, distances, the ETF distances) is
computed over square tiles of pairs of classes, and the K x d inputs (the
centred means Hbar^T, the classifier W) are read as tiles of rows made on the
fly (`Rows`), so that nothing but the statistics themselves grows with K.

The tile budget bounds the bytes of the temporaries of one tile: the
default is `DEFAULT_TILE_BYTES` (256 MiB); `tile_budget(n)` sets another
for the code run inside it, and `CollapseStatistics(..., tile_bytes=n)`
for its measurements. A tile of pairs holds up to about ten float64
arrays of t x t entries at once, besides the two t x d tiles of rows they
come from; t is sized for `_PAIR_TEMPORARIES` such arrays, which leaves
room for the K-vectors and the allocator: t = 1,589 classes at the
default budget for d = 1,024, whose (t x d)(d x t) products run at BLAS
speed. Measured peak of `measure()` beyond the statistics: 236 MiB at
K = 10,000, d = 1,024 (benchmarks/bench_vocab.py).
"""

import contextlib
import contextvars

import numpy as np

__all__ = ["DEFAULT_TILE_BYTES", "Rows", "as_rows", "pair_tile_size", "row_tile_size",
           "tile_budget", "tile_bytes"]

DEFAULT_TILE_BYTES = 256 * 2**20
# The float64 t x t arrays a tile of pairs is sized for: the Gram block and
# the cosines, distances and terms derived from it (about ten at once),
# with room to spare (a peak of 266 MiB was measured at 10 for a 256 MiB budget).
_PAIR_TEMPORARIES = 12
_BUDGET = contextvars.ContextVar("nc_keras_tile_bytes", default=DEFAULT_TILE_BYTES)


def tile_bytes():
    """The tile budget in force, in bytes."""
    return _BUDGET.get()


@contextlib.contextmanager
def tile_budget(num_bytes):
    """Runs the block with `num_bytes` (None: the default) as the tile budget.

    Example:

    ```python
    with nc_keras.collapse.tile_budget(64 * 2**20):
        result = stats.measure(W, b)
    ```
    """
    if num_bytes is None:
        num_bytes = DEFAULT_TILE_BYTES
    if isinstance(num_bytes, bool) or not isinstance(num_bytes, (int, np.integer)) or num_bytes < 2**16:
        raise ValueError(f"tile_bytes must be an integer of at least 65536 bytes; got {num_bytes!r}")
    token = _BUDGET.set(int(num_bytes))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def pair_tile_size(num_classes, width=0):
    """Classes per side of a tile of pairs under the budget (at least 16).

    The largest t with `_PAIR_TEMPORARIES` t x t arrays and the two t x
    `width` tiles of rows they come from within the budget.
    """
    entries, a, c = tile_bytes() / 8, _PAIR_TEMPORARIES, 2 * width
    side = int((-c + np.sqrt(c * c + 4 * a * entries)) / (2 * a))
    return max(16, min(num_classes, side))


def row_tile_size(num_rows, width, arrays=4):
    """Rows per tile of a (rows, width) float64 array, `arrays` such arrays at once."""
    return max(16, min(num_rows, tile_bytes() // (8 * arrays * max(width, 1))))


class Rows:
    """A (n, d) float64 matrix read by tiles of rows, never formed whole.

    Row i is `(base[index[i]] - offset) / scale`: the centred class means
    Hbar^T are `Rows(means, offset=mu_G)`, the present classes' classifier
    `Rows(W, index=present)`. Slicing with a step-1 slice makes that tile.

    Args:
        base: (m, d) array.
        index: (n,) row indices into `base`, or None (all rows).
        offset: (d,) subtracted from every row, or None.
        scale: every row is divided by it.
    """

    def __init__(self, base, index=None, offset=None, scale=1.0):
        self.base = base
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.offset = offset
        self.scale = float(scale)
        rows = base.shape[0] if index is None else self.index.shape[0]
        self.shape = (rows, base.shape[1])

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, item):
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("Rows are read by slices of consecutive rows")
        if self.index is None:  # a view of `base`: copied, then changed in place
            rows = np.array(self.base[item], dtype=np.float64)
        else:  # fancy indexing has copied already
            rows = np.asarray(self.base[self.index[item]], dtype=np.float64)
        if self.offset is not None:
            rows -= self.offset
        if self.scale != 1.0:
            rows /= self.scale
        return rows

    def rescaled(self, factor):
        """These rows divided by `factor` too (a new view, nothing computed)."""
        return Rows(self.base, self.index, self.offset, self.scale * factor)

    def tiles(self, size=None, arrays=4):
        """Yields (start, rows) tiles of at most `size` rows (default: by the budget)."""
        size = size or row_tile_size(self.shape[0], self.shape[1], arrays)
        for start in range(0, self.shape[0], size):
            yield start, self[start:start + size]


def as_rows(matrix, columns=False):
    """`Rows` of a (n, d) array, or of the columns of a (d, n) one; `Rows` pass through."""
    if isinstance(matrix, Rows):
        return matrix
    matrix = np.asarray(matrix, dtype=np.float64)
    return Rows(matrix.T if columns else matrix)
