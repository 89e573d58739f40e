"""Shared fixtures of the forecasting tests: one torch thread, the ETTh1 file (skipped when absent), its columns."""

import csv
from pathlib import Path

import numpy as np
import pytest

ETTH1 = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ett" / "ETTh1.csv"


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test module here runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def etth1() -> Path:
    """Path of ``../shared/data/ett/ETTh1.csv`` (from the repository root)."""
    if not ETTH1.is_file():
        pytest.skip(f"ETTh1 not found at {ETTH1} (the shared data folder is absent)")
    return ETTH1


@pytest.fixture(scope="session")
def etth1_raw(etth1) -> dict[str, np.ndarray]:
    """ETTh1's columns read with the csv module alone: ``{"date": str array, "OT": float array, ...}``."""
    with open(etth1, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([row[key] for row in rows], dtype=object if key == "date" else np.float64) for key in rows[0]}
