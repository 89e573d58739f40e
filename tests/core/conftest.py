"""Scan tests: NaN-poisoned allocations for every test (the ``device`` they run on is tests/conftest.py's)."""

import pytest


@pytest.fixture(autouse=True)
def _poison_allocations(nan_poisoned_empty):
    """Applies ``nan_poisoned_empty`` (tests/conftest.py) to every test here."""
