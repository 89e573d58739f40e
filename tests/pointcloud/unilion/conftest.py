"""The UniLION tests run on one torch thread (spconv's CPU path needs it)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test module here runs on one torch thread (tests/conftest.py)."""
