"""Reading the CIFAR python batches without running code from them.

`pickle.load` calls whatever callable a pickle names (`os.system`, ...)
while it reads: a crafted `data_batch_1` under `data_dir` would run code
before any check could reject it. `load_batch` unpickles with `find_class`
restricted to what a CIFAR-10 or CIFAR-100 batch holds: dicts, lists,
strings, bytes and ints (built by pickle's own opcodes, no class needed)
and NumPy arrays with their dtypes, of numbers or bytes only. Any other
global a pickle names is refused, before it is looked up, with a
`CorruptDataError` naming the file, so nothing it names is ever imported
or called; what pickle's opcodes build without a global (sets, tuples,
floats, None) is refused once read, as no batch holds it.

The globals admitted, and why each cannot run code of the file's choosing:

- `numpy.ndarray` and `numpy.core.multiarray._reconstruct` (NumPy 2:
  `numpy._core.multiarray._reconstruct`): how NumPy pickles an array
  (an empty array, then its state: shape, dtype, raw bytes);
  `_reconstruct` takes the class to build, which must be `numpy.ndarray`;
- `numpy.core.numeric._frombuffer` (NumPy 2: `numpy._core...`): protocol
  5's form of the same, an array over the pickled bytes;
- `numpy.dtype`, of a numeric, bool or bytes kind: object dtypes
  (arrays of arbitrary objects) are not what a batch holds;
- `_codecs.encode(text, "latin1")`: how Python 3 writes `bytes` in a
  protocol-2 pickle; any other encoding is refused.
"""

import pickle

import numpy as np

from nc_keras.data.integrity import REFETCH, CorruptDataError, reading

WHAT_A_BATCH_HOLDS = "dicts, lists, strings, bytes, ints and NumPy arrays of numbers or bytes"
# numpy kinds: b bool, i/u integers, f floats, c complex, S bytes, U str.
_PLAIN_KINDS = frozenset("biufcSU")


class _Refused(Exception):
    """The pickle asks for something a batch does not hold (the message says what)."""


def _array(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise _Refused(f"an array of class {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _dtype(dtype))


def _frombuffer(buffer, dtype, shape, order):
    return np.frombuffer(buffer, _dtype(dtype)).reshape(shape, order=order)


def _dtype(spec, *args):
    dtype = np.dtype(spec, *args[:2])  # (spec, align, copy) as NumPy pickles it
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None:
        raise _Refused(f"an array of dtype {dtype!r}")
    return dtype


def _latin1(text, encoding):
    if encoding != "latin1":
        raise _Refused(f"_codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


_ADMITTED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _array,
    ("numpy._core.multiarray", "_reconstruct"): _array,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise _Refused(f"the global {module}.{name}") from None


def load_batch(path):
    """The object pickled in the CIFAR batch file `path`, built without running its code.

    Bytes stay bytes (`encoding="bytes"`, as the batches' Python 2 pickles
    need). `CorruptDataError` naming `path` when the pickle names anything a
    batch does not hold (`WHAT_A_BATCH_HOLDS`), is cut or damaged, or is
    followed by more bytes.
    """
    with reading(path), open(path, "rb") as handle:
        try:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
        except _Refused as refused:
            raise CorruptDataError(
                f"{path} is not a CIFAR batch: its pickle asks for {refused}, and a batch holds "
                f"only {WHAT_A_BATCH_HOLDS}. It was refused unread (nothing in it ran); "
                f"{REFETCH}"
            ) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            # Opcodes in an order no pickler writes (a damaged file).
            raise CorruptDataError(f"{path} is corrupt ({type(error).__name__}: {error}): {REFETCH}") from None
        if handle.read(1):  # a pickle ends where its data does
            raise CorruptDataError(f"{path} is corrupt: bytes follow the pickled batch; {REFETCH}")
    odd = _not_held(batch)
    if odd is not None:
        raise CorruptDataError(
            f"{path} is not a CIFAR batch: it holds {odd}, where a batch holds only a dict of "
            f"{WHAT_A_BATCH_HOLDS}; {REFETCH}"
        )
    return batch


def _not_held(batch):
    """What in `batch` a CIFAR batch does not hold (a phrase), or None.

    Pickle's own opcodes build sets, tuples, floats and None without naming
    a global: harmless, but not a batch.
    """
    if not isinstance(batch, dict):
        return f"a {type(batch).__name__} at its top"
    pending = list(batch.items())
    while pending:
        key, value = pending.pop()
        if not isinstance(key, (bytes, str)):
            return f"a key of type {type(key).__name__}"
        if isinstance(value, list):
            pending += [(key, item) for item in value]
        elif not isinstance(value, (bytes, str, int, np.ndarray)):
            return f"a {type(value).__name__} under {key!r}"
    return None
