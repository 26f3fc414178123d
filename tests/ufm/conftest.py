"""Fixtures of the UFM tests: ground truth from Theorem 3.1 on the active
backend (KERAS_BACKEND)."""

import pytest

from nc_keras import backend, ufm

LAMBDAS = (5e-3, 5e-3, 5e-3)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These problems are tiny: on a shared 2-core machine torch's intra-op
    threads only contend (10x slower). Restored afterwards for other tests."""
    if backend.name() != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def f_value():
    """f(W, H, b) of eq. (3) at NumPy arrays, as a Python float."""

    def value(W, H, b, labels, lambdas=LAMBDAS):
        with backend.float64():
            tensors = [backend.to_tensor(a) for a in (W, H, b)]
            return float(backend.to_numpy(ufm.objective(*tensors, labels, *lambdas)))

    return value
