"""The make targets README.md names: each would run what it says (`make -n`, nothing run)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_targets():
    # "`make test-jax` (or `test-tensorflow`, `test-torch`)" names three.
    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"`make ([\w-]+)", readme) + re.findall(r"`(test-\w+)`", readme)
    return sorted(set(named))


def _dry_run(target):
    # A venv path that exists nowhere: make plans its creation, runs nothing.
    done = subprocess.run(["make", "-n", target, "VENV=/nonexistent-venv"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_names_the_backend_targets():
    assert {"test", "demo", "setup", "test-jax", "test-tensorflow", "test-torch"} <= set(_readme_targets())


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("backend_name", ["tensorflow", "jax", "torch"])
def test_backend_target_runs_pytest_on_its_backend(backend_name, backend):
    if backend != "torch":
        pytest.skip("make does not depend on the backend of this pass; the torch pass runs it")
    planned = _dry_run(f"test-{backend_name}").splitlines()
    # A .PHONY target's pattern rule is never used: make then ran nothing
    # ("Nothing to be done") after the setup step.
    runs = [line for line in planned if "-m pytest tests" in line]
    assert runs == [f"KERAS_BACKEND={backend_name} /nonexistent-venv/bin/python -m pytest tests "]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_every_readme_target_has_a_rule(backend):
    if backend != "torch":
        pytest.skip("make does not depend on the backend of this pass; the torch pass runs it")
    for target in _readme_targets():
        planned = _dry_run(target)
        assert "/nonexistent-venv/bin/python -m pip install" in planned, target  # setup first
        if target.startswith("test"):
            assert re.search(r"scripts/test_backends.py|-m pytest tests", planned), target
