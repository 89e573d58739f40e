"""The video tests run torch on one thread: their tensors are small, and on a busy 2-core machine two threads
wait on each other (the demo recipe: 2.6 s of training and testing on one thread, 45 s on two)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test module here runs on one torch thread (tests/conftest.py)."""
