"""Shared test fixtures.

Real-data tests read `../shared/data` next to the repository (or the folder
named by NC_KERAS_SHARED_DATA) and skip when it is absent, as in a user's clone.
"""

import os
from pathlib import Path

import keras
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("NC_KERAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, on every backend."""
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture
def backend():
    return keras.backend.backend()


def pytest_configure(config):
    # Registered here, not in pyproject.toml; tests/recipes/test_preflight.py
    # says which of them run by default on which backend.
    config.addinivalue_line(
        "markers",
        "slow_preflight: a paper preset at full model size on real data for one batch "
        "(minutes on a CPU); deselect with -m 'not slow_preflight'",
    )
