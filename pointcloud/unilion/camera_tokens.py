"""UniLION's camera tokens: image features lifted into the LiDAR voxel grid as sparse tokens (``LSSViewTransformer``
with ``out_voxel=True``).

A timm image backbone gives one feature map at stride ``s``; a 1x1 convolution turns each feature pixel into
``D`` depth logits (bins of ``depth_step`` metres from ``depth_min``) and ``C`` context channels. Each pixel keeps
its ``top_k`` most likely depth bins (UniLION: 4); the point at a kept bin's depth along the pixel's ray carries
``p_bin * context`` into the voxel that contains it, and a voxel's token is the sum over everything that lands in
it (lift-splat pooling). The tokens come out as ``(features [M, C], coords [M, 4])``, coordinates
``(batch, z, y, x)`` on the same grid as ``voxelize``, so they concatenate with the LiDAR tokens.

``depth_loss`` supervises the depth logits with the LiDAR points projected into the image (UniLION's
``with_depth_loss``, weight 0.05): cross-entropy against the bin of the nearest point that falls in each pixel.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..voxelize import decode_voxel_keys, grid_size, voxel_cells, voxel_keys
from .camera import PinholeCamera


class CameraVoxelTokens(nn.Module):
    """Images ``[B, 3, H, W]`` and one ``PinholeCamera`` each -> sparse voxel tokens.

    Args:
        out_channels: token channels ``C``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` metres, LiDAR frame.
        voxel_size: ``(v_x, v_y, v_z)`` metres.
        backbone: a timm model name, built with ``features_only``; its last feature level is lifted.
        backbone_options: passed to ``timm.create_model`` (e.g. ``pretrained_cfg_overlay`` for local weights).
        depth_min, depth_step, depth_bins: bin ``i`` is centred at ``depth_min + i * depth_step`` metres.
        top_k: depth bins kept per pixel.
    """

    def __init__(
        self,
        out_channels: int,
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        backbone: str = "resnet18",
        backbone_options: dict | None = None,
        depth_min: float = 2.0,
        depth_step: float = 1.0,
        depth_bins: int = 64,
        top_k: int = 4,
    ) -> None:
        super().__init__()
        import timm

        if not 1 <= top_k <= depth_bins:
            raise ValueError(f"top_k must be in [1, depth_bins = {depth_bins}], got {top_k}")
        if depth_step <= 0 or depth_min <= 0:
            raise ValueError(f"depth_min and depth_step must be positive metres, got {depth_min}, {depth_step}")
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        self.grid = grid_size(self.point_cloud_range, self.voxel_size)  # (n_x, n_y, n_z)
        self.image_backbone = timm.create_model(
            backbone, features_only=True, out_indices=(-1,), pretrained=False, **(backbone_options or {})
        )
        self.stride = self.image_backbone.feature_info.reduction()[-1]
        image_channels = self.image_backbone.feature_info.channels()[-1]
        self.depth_and_context = nn.Conv2d(image_channels, depth_bins + out_channels, 1)
        self.register_buffer("depths", depth_min + depth_step * torch.arange(depth_bins, dtype=torch.float32))
        self.depth_step, self.top_k, self.out_channels = float(depth_step), int(top_k), int(out_channels)

    @property
    def depth_bins(self) -> int:
        return len(self.depths)

    def forward(
        self, images: torch.Tensor, cameras: Sequence[PinholeCamera]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens ``features [M, C]``, ``coords [M, 4]`` int32 (batch, z, y, x; unique, sorted) and the depth
        logits ``[B, D, h, w]`` of the feature map (for ``depth_loss``)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        if len(cameras) != len(images):
            raise ValueError(f"need one camera per image: {len(images)} images, {len(cameras)} cameras")
        maps = self.depth_and_context(self.image_backbone(images)[-1])
        depth_logits, context = maps[:, : self.depth_bins], maps[:, self.depth_bins :]
        probabilities, bins = depth_logits.softmax(dim=1).topk(self.top_k, dim=1)  # [B, k, h, w]
        height, width = context.shape[2:]
        rows, cols = torch.meshgrid(
            torch.arange(height, device=images.device), torch.arange(width, device=images.device), indexing="ij"
        )
        pixels = torch.stack([cols, rows], dim=-1).reshape(-1, 2) * self.stride + (self.stride - 1) / 2  # [h*w, 2]
        keys, values = [], []
        for index, camera in enumerate(cameras):
            depth = self.depths[bins[index]].reshape(self.top_k, -1)  # [k, h*w]
            points = camera.pixels_to_lidar(pixels.repeat(self.top_k, 1), depth.reshape(-1))
            cells, inside = voxel_cells(points, self.point_cloud_range, self.voxel_size)
            key = voxel_keys(torch.full_like(cells[:, 0], index), cells, self.grid)
            weights = probabilities[index].reshape(self.top_k, -1, 1)  # [k, h*w, 1]
            pixel_context = context[index].reshape(self.out_channels, -1).T  # [h*w, C]
            lifted = (weights * pixel_context).reshape(-1, self.out_channels)
            keys.append(key[inside])
            values.append(lifted[inside])
        unique_keys, inverse = torch.unique(torch.cat(keys), sorted=True, return_inverse=True)
        values = torch.cat(values)
        features = values.new_zeros(len(unique_keys), self.out_channels).index_add(0, inverse, values)
        return features, decode_voxel_keys(unique_keys, self.grid), depth_logits

    def depth_loss(
        self, depth_logits: torch.Tensor, points: Sequence[torch.Tensor], cameras: Sequence[PinholeCamera]
    ) -> torch.Tensor:
        """Mean cross-entropy of ``depth_logits [B, D, h, w]`` against the depth bin of the nearest LiDAR point
        (``points[b] [P, >= 3]``, LiDAR frame) seen in each feature pixel; pixels that see no point, or only points
        outside the bins, are left out. Zero when no pixel has a target."""
        batch, bins, height, width = depth_logits.shape
        logits, targets = [], []
        for index, (cloud, camera) in enumerate(zip(points, cameras, strict=True)):
            pixels, depth = camera.lidar_to_pixels(cloud[:, :3])
            col = torch.floor((pixels[:, 0] + 0.5) / self.stride).long()
            row = torch.floor((pixels[:, 1] + 0.5) / self.stride).long()
            target = torch.round((depth - self.depths[0].double()) / self.depth_step).long()
            seen = (depth > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
            seen &= (target >= 0) & (target < bins)
            if not seen.any():
                continue
            pixel = row[seen] * width + col[seen]
            nearest = torch.full((height * width,), bins, dtype=torch.long, device=depth_logits.device)
            nearest = nearest.scatter_reduce(0, pixel, target[seen], reduce="amin")
            has_target = nearest < bins
            logits.append(depth_logits[index].reshape(bins, -1).T[has_target])
            targets.append(nearest[has_target])
        if not logits:
            return depth_logits.sum() * 0.0
        return F.cross_entropy(torch.cat(logits), torch.cat(targets))
