"""Fixtures for the scan tests: NaN-poisoned allocations and the device the Triton face runs on."""

import pytest
import torch

_empty, _empty_like = torch.empty, torch.empty_like


def _poisoned(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point() or t.is_complex():
        t.fill_(float("nan"))
    return t


@pytest.fixture(autouse=True)
def nan_poisoned_empty(monkeypatch):
    """Every ``torch.empty``/``empty_like`` made during a test starts as NaN, so an unwritten output fails."""
    monkeypatch.setattr(torch, "empty", lambda *args, **kwargs: _poisoned(_empty(*args, **kwargs)))
    monkeypatch.setattr(torch, "empty_like", lambda *args, **kwargs: _poisoned(_empty_like(*args, **kwargs)))


@pytest.fixture
def device() -> torch.device:
    """Where the fast faces run: the GPU when there is one, else the CPU (Triton under the interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
