"""Kernel tests: every allocation starts as NaN, so an output a kernel forgets to write fails."""

import pytest


@pytest.fixture(autouse=True)
def _poison_allocations(nan_poisoned_empty):
    """Applies ``nan_poisoned_empty`` (tests/conftest.py) to every test here."""
