"""Scan tests: NaN-poisoned allocations for every test, and the device the Triton face runs on."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _poison_allocations(nan_poisoned_empty):
    """Applies ``nan_poisoned_empty`` (tests/conftest.py) to every test here."""


@pytest.fixture
def device() -> torch.device:
    """Where the fast faces run: the GPU when there is one, else the CPU (Triton under the interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
