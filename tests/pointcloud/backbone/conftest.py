"""Shared pieces of the LION backbone tests: one torch thread (spconv's CPU path needs it), random voxels."""

import pointcloud_testing
import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test module here runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def random_voxels():
    """``pointcloud_testing.random_voxels(counts, spatial_shape, channels, seed=0)``."""
    return pointcloud_testing.random_voxels
