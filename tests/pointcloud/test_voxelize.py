import math

import pytest
import torch
from lrnn.pointcloud.voxelize import grid_size, voxelize

RANGE = (0.0, -2.0, -1.0, 4.0, 2.0, 1.0)
VOXEL = (1.0, 1.0, 0.5)


def naive_voxelize(clouds, point_cloud_range, voxel_size):
    """One Python loop over the points: the definition."""
    n = grid_size(point_cloud_range, voxel_size)
    members = {}
    for b, cloud in enumerate(clouds):
        for row in cloud.tolist():
            cell = [math.floor((row[a] - point_cloud_range[a]) / voxel_size[a]) for a in range(3)]
            if all(0 <= cell[a] < n[a] for a in range(3)):
                members.setdefault((b, cell[2], cell[1], cell[0]), []).append(row)
    keys = sorted(members)
    features = [[sum(col) / len(col) for col in zip(*members[k], strict=True)] for k in keys]
    return torch.tensor(features, dtype=torch.float64), torch.tensor(keys, dtype=torch.int32)


def test_hand_made_case():
    points = torch.tensor(
        [
            [0.2, -1.5, -0.9, 1.0],  # voxel x0 y0 z0
            [0.8, -1.1, -0.6, 3.0],  # same voxel
            [3.5, 1.5, 0.9, 5.0],  # voxel x3 y3 z3
            [4.0, 0.0, 0.0, 7.0],  # x == x_max: outside
            [-0.1, 0.0, 0.0, 7.0],  # x < x_min: outside
        ]
    )
    features, coords = voxelize(points, RANGE, VOXEL)
    assert coords.dtype == torch.int32
    torch.testing.assert_close(coords, torch.tensor([[0, 0, 0, 0], [0, 3, 3, 3]], dtype=torch.int32))
    torch.testing.assert_close(features, torch.tensor([[0.5, -1.3, -0.75, 2.0], [3.5, 1.5, 0.9, 5.0]]))


def test_matches_a_python_loop_over_a_batch():
    generator = torch.Generator().manual_seed(0)
    clouds = [torch.rand(n, 5, generator=generator, dtype=torch.float64) * 6 - 2 for n in (300, 0, 50)]
    features, coords = voxelize(clouds, RANGE, VOXEL)
    want_features, want_coords = naive_voxelize(clouds, RANGE, VOXEL)
    torch.testing.assert_close(coords, want_coords)
    torch.testing.assert_close(features, want_features)
    assert set(coords[:, 0].tolist()) == {0, 2}


def test_empty_cloud_gives_empty_outputs_with_the_right_shapes():
    features, coords = voxelize(torch.zeros(0, 4), RANGE, VOXEL)
    assert features.shape == (0, 4) and coords.shape == (0, 4) and coords.dtype == torch.int32
    features, coords = voxelize(torch.tensor([[9.0, 9.0, 9.0, 1.0]]), RANGE, VOXEL)
    assert features.shape == (0, 4) and coords.shape == (0, 4)


def test_grid_size_and_errors():
    assert grid_size((0, -40, -3, 70.4, 40, 1), (0.2, 0.2, 0.125)) == (352, 400, 32)
    with pytest.raises(ValueError, match="point_cloud_range"):
        voxelize(torch.zeros(1, 4), (0, 0, 0, 1, 1), VOXEL)
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(torch.zeros(1, 4), RANGE, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="same C"):
        voxelize([torch.zeros(1, 4), torch.zeros(1, 5)], RANGE, VOXEL)
    with pytest.raises(TypeError, match="floating"):
        voxelize(torch.zeros(1, 4, dtype=torch.int64), RANGE, VOXEL)
