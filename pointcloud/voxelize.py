"""Dynamic voxelisation: raw LiDAR points to one mean feature per occupied voxel (OpenPCDet's ``MeanVFE``).

A point ``p = (x, y, z, f_1, ..., f_C)`` (metres, then any per-point features such as intensity) falls in the
voxel ``(floor((x - x_min) / v_x), floor((y - y_min) / v_y), floor((z - z_min) / v_z))``; points whose voxel lies
outside the grid ``[0, n_x) x [0, n_y) x [0, n_z)``, ``n = round((max - min) / v)``, are dropped, as in
OpenPCDet's ``DynamicMeanVFE``. Each occupied voxel's feature is the mean of its points' full rows ``[3 + C]``.
"""

from collections.abc import Sequence

import torch


def grid_size(point_cloud_range: Sequence[float], voxel_size: Sequence[float]) -> tuple[int, int, int]:
    """Voxels per axis ``(n_x, n_y, n_z)`` for ``point_cloud_range (x_min, y_min, z_min, x_max, y_max, z_max)``
    and ``voxel_size (v_x, v_y, v_z)``, both in metres."""
    if len(point_cloud_range) != 6:
        raise ValueError(f"point_cloud_range must hold 6 numbers (mins then maxs), got {list(point_cloud_range)}")
    if len(voxel_size) != 3 or not all(v > 0 for v in voxel_size):
        raise ValueError(f"voxel_size must hold 3 positive numbers, got {list(voxel_size)}")
    lows, highs = point_cloud_range[:3], point_cloud_range[3:]
    if not all(high > low for low, high in zip(lows, highs, strict=True)):
        raise ValueError(f"point_cloud_range must have max > min on every axis, got {list(point_cloud_range)}")
    return tuple(round((high - low) / v) for low, high, v in zip(lows, highs, voxel_size, strict=True))


def voxelize(
    points: torch.Tensor | Sequence[torch.Tensor],
    point_cloud_range: Sequence[float],
    voxel_size: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-of-points voxel features and their integer coordinates.

    Args:
        points: one cloud ``[P, 3 + C]`` (batch of one) or a list of clouds, one per batch sample; columns are
            ``x, y, z`` in metres then ``C >= 0`` features. All clouds share dtype, device and ``C``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres.
        voxel_size: ``(v_x, v_y, v_z)`` in metres.

    Returns:
        ``voxel_features [N, 3 + C]`` (the points' mean, in the points' dtype) and ``voxel_coords [N, 4]`` int32,
        columns ``(batch, z, y, x)``, rows sorted by that tuple. An empty input gives ``N = 0``.
    """
    clouds = [points] if isinstance(points, torch.Tensor) else list(points)
    if not clouds:
        raise ValueError("points must be a tensor [P, 3 + C] or a non-empty list of them")
    for index, cloud in enumerate(clouds):
        if not isinstance(cloud, torch.Tensor) or not cloud.is_floating_point():
            raise TypeError(f"points[{index}] must be a floating torch.Tensor, got {type(cloud).__name__}")
        if cloud.ndim != 2 or cloud.shape[1] < 3 or cloud.shape[1] != clouds[0].shape[1]:
            raise ValueError(
                f"every cloud must be [P, 3 + C] with the same C; points[{index}] has shape {tuple(cloud.shape)}, "
                f"points[0] has {tuple(clouds[0].shape)}"
            )
    device, dtype = clouds[0].device, clouds[0].dtype
    grid = grid_size(point_cloud_range, voxel_size)

    all_points = torch.cat(clouds)
    batch = torch.repeat_interleave(
        torch.arange(len(clouds), device=device), torch.tensor([len(c) for c in clouds], device=device)
    )
    cells, inside = voxel_cells(all_points[:, :3], point_cloud_range, voxel_size)
    all_points, batch, cells = all_points[inside], batch[inside], cells[inside]

    unique_keys, voxel_of_point = torch.unique(voxel_keys(batch, cells, grid), sorted=True, return_inverse=True)
    sums = torch.zeros(len(unique_keys), all_points.shape[1], device=device, dtype=dtype)
    sums.index_add_(0, voxel_of_point, all_points)
    counts = torch.bincount(voxel_of_point, minlength=len(unique_keys)).to(dtype)
    voxel_features = sums / counts.clamp(min=1).unsqueeze(1)
    return voxel_features, decode_voxel_keys(unique_keys, grid)


def voxel_cells(
    points: torch.Tensor, point_cloud_range: Sequence[float], voxel_size: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells ``[P, 3]`` int64 (x, y, z) of ``points [P, 3]`` (metres) and the mask ``[P]`` of those inside
    the grid (computed in float64)."""
    grid = grid_size(point_cloud_range, voxel_size)
    low = torch.tensor(point_cloud_range[:3], device=points.device, dtype=torch.float64)
    size = torch.tensor(voxel_size, device=points.device, dtype=torch.float64)
    cells = torch.floor((points.double() - low) / size).long()
    return cells, ((cells >= 0) & (cells < torch.tensor(grid, device=points.device))).all(dim=1)


def voxel_keys(batch: torch.Tensor, cells: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """Linear keys ``[P]`` int64 of ``(batch [P], cells [P, 3] (x, y, z))`` on ``grid (n_x, n_y, n_z)``, ascending
    in ``(batch, z, y, x)``."""
    n_x, n_y, n_z = grid
    return ((batch.long() * n_z + cells[:, 2]) * n_y + cells[:, 1]) * n_x + cells[:, 0]


def decode_voxel_keys(keys: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """``voxel_keys``' inverse: coordinates ``[M, 4]`` int32 (batch, z, y, x)."""
    n_x, n_y, n_z = grid
    x, y, z = keys % n_x, keys // n_x % n_y, keys // (n_x * n_y) % n_z
    return torch.stack([keys // (n_x * n_y * n_z), z, y, x], dim=1).int()
