"""Shared pieces of the point-cloud tests (importable from any of them: pyproject sets pytest's pythonpath): data
paths and ranges, the small LION configuration, a small detector, a few training steps."""

from pathlib import Path

import torch
from lrnn.pointcloud.lit import LIONDetector

KITTI_ROOT = Path(__file__).parents[2] / ".." / "shared" / "data" / "kitti" / "training"
CLASSES = ["Car", "Pedestrian", "Cyclist"]
SYNTHETIC_RANGE = (0.0, -16.0, -3.0, 32.0, 16.0, 1.0)
KITTI_RANGE = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)
SMALL_LION = {
    "FEATURE_DIM": 16,
    "OPERATOR": {"NAME": "mamba", "CFG": {"d_state": 4}},
    "DEPTHS": [1, 1],
    "WINDOW_SHAPE": [[8, 8, 8], [8, 8, 4]],
    "GROUP_SIZE": [256, 256],
    "OUTPUT_WINDOW_SHAPE": [8, 8, 2],
    "OUTPUT_GROUP_SIZE": 128,
}


def small_detector(point_cloud_range=SYNTHETIC_RANGE, voxel_size=(0.4, 0.4, 0.5), **options) -> LIONDetector:
    """A LION-Mamba detector of about 0.1 M parameters on a grid of height 8."""
    torch.manual_seed(0)
    return LIONDetector(
        SMALL_LION,
        CLASSES,
        point_cloud_range,
        voxel_size,
        bev_channels=(16, 32),
        bev_layers=(1, 1),
        bev_upsample_channels=16,
        head_options={"shared_channels": 16},
        **options,
    )


def train_steps(detector: LIONDetector, batch: dict, steps: int, lr: float = 3e-3) -> list[float]:
    """Losses of ``steps`` AdamW steps on one batch (the detector's own loss, no Trainer)."""
    optimizer = torch.optim.AdamW(detector.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = detector.head.loss(detector(batch["points"]), batch["boxes"], batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def random_voxels(
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
