"""Shared pieces of the LION backbone tests: one torch thread (spconv's CPU path needs it), random voxels."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test module here runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def random_voxels():
    """``random_voxels(counts, spatial_shape, channels, seed=0)``, see ``_random_voxels``."""
    return _random_voxels


def _random_voxels(
    counts: list[int], spatial_shape: tuple[int, int, int], channels: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique ``coords [N, 4]`` int32 (batch, z, y, x) on the grid ``spatial_shape (Z, Y, X)``, ``counts[b]`` in
    sample ``b``, and features ``[N, channels]``."""
    generator = torch.Generator().manual_seed(seed)
    z, y, x = spatial_shape
    rows = []
    for b, n in enumerate(counts):
        flat = torch.randperm(z * y * x, generator=generator)[:n]
        rows.append(torch.stack([torch.full_like(flat, b), flat // (y * x), flat // x % y, flat % x], dim=1))
    coords = torch.cat(rows).int()
    return coords, torch.randn(len(coords), channels, generator=generator)
