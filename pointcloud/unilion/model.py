"""``UniLION``: one LION backbone over LiDAR, camera and temporal tokens, with detection and BEV segmentation heads.

Following UniLION, modalities are unified by concatenating tokens, not by a fusion module: LiDAR voxels (the mean
of each voxel's points, embedded by ``Linear -> LayerNorm -> ReLU`` to ``C`` channels; UniLION's dynamic pillar
VFE plays this part), camera tokens (``CameraVoxelTokens``) and the previous frame's tokens (``TemporalTokens``)
are stacked, tokens that share a voxel are summed (UniLION's input merge), and the result goes through
``LION3DBackbone``, height compression and the BEV backbone into a ``CenterHead`` and a ``BEVSegmentationHead``.
Which inputs a call passes decides the combination (LiDAR alone, + time, + camera, all three), so one set of
weights serves all four; training drops the optional inputs at random to keep it so.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..backbone import LION3DBackbone, height_compression
from ..backbone.lion3d import read_config
from ..backbone.merge import merge_voxels
from ..bev_backbone import BEVBackbone
from ..detect import CenterHead
from ..sparse_conv import SparseConvTensor
from ..voxelize import grid_size, voxelize
from .camera import PinholeCamera
from .camera_tokens import CameraVoxelTokens
from .seg_head import BEVSegmentationHead
from .temporal_tokens import TemporalTokens


class UniLION(nn.Module):
    """The unified model.

    Args:
        model_cfg: ``LION3DBackbone``'s configuration; its feature dim is the token width ``C``.
        num_classes: detection classes, also the segmentation layers.
        point_cloud_range, voxel_size: the token grid (metres).
        point_features: LiDAR point columns (x, y, z and extras).
        camera_options: ``CameraVoxelTokens`` options (all but the grid and width), or None for no camera branch.
        temporal: build the temporal branch; ``max_gap`` seconds before its memory goes stale.
        bev_channels, bev_layers, bev_upsample_channels: ``BEVBackbone``'s sizes.
        head_options: ``CenterHead`` options.
        seg_channels: width of the segmentation head.
    """

    def __init__(
        self,
        model_cfg: dict[str, Any],
        num_classes: int,
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        point_features: int = 4,
        camera_options: dict[str, Any] | None = None,
        temporal: bool = True,
        max_gap: float = 2.0,
        bev_channels: Sequence[int] = (64, 128),
        bev_layers: Sequence[int] = (3, 5),
        bev_upsample_channels: int = 128,
        head_options: dict[str, Any] | None = None,
        seg_channels: int = 64,
    ) -> None:
        super().__init__()
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        grid = grid_size(self.point_cloud_range, self.voxel_size)
        width = read_config(model_cfg)["feature_dim"]
        self.backbone = LION3DBackbone(model_cfg, width, grid, self.voxel_size, self.point_cloud_range)
        self.lidar_embedding = nn.Sequential(nn.Linear(point_features, width), nn.LayerNorm(width), nn.ReLU())
        self.camera_tokens = (
            None
            if camera_options is None
            else CameraVoxelTokens(width, self.point_cloud_range, self.voxel_size, **camera_options)
        )
        self.temporal_tokens = (
            TemporalTokens(width, self.point_cloud_range, self.voxel_size, max_gap) if temporal else None
        )
        self.bev_backbone = BEVBackbone(self.backbone.num_bev_features, bev_channels, bev_layers, bev_upsample_channels)
        self.detection_head = CenterHead(
            self.bev_backbone.out_channels, num_classes, self.point_cloud_range, self.voxel_size, **(head_options or {})
        )
        self.segmentation_head = BEVSegmentationHead(self.bev_backbone.out_channels, num_classes, seg_channels)

    def tokens(
        self,
        points: Sequence[torch.Tensor],
        images: torch.Tensor | None = None,
        cameras: Sequence[PinholeCamera] | None = None,
        poses: torch.Tensor | None = None,
        scenes: Sequence[str] | None = None,
        times: Sequence[float] | None = None,
    ) -> tuple[SparseConvTensor, torch.Tensor | None]:
        """The merged token set (``C`` channels, unique voxels) and the camera depth logits (None without images)."""
        lidar_features, coords = voxelize(list(points), self.point_cloud_range, self.voxel_size)
        features = self.lidar_embedding(lidar_features)
        depth_logits = None
        if images is not None:
            if self.camera_tokens is None or cameras is None:
                raise ValueError("images need the camera branch (camera_options) and one PinholeCamera per image")
            camera_features, camera_coords, depth_logits = self.camera_tokens(images, cameras)
            features, coords = torch.cat([features, camera_features]), torch.cat([coords, camera_coords])
        if poses is not None:
            if self.temporal_tokens is None or scenes is None or times is None:
                raise ValueError("poses need the temporal branch (temporal=True) and scene ids and times per frame")
            features, coords = self.temporal_tokens(features, coords, poses, scenes, times)
        if not len(features):
            raise ValueError(f"no token inside point_cloud_range {self.point_cloud_range}")
        tokens = SparseConvTensor(features, coords.int(), self.backbone.sparse_shape, len(points))
        return merge_voxels(tokens, (1, 1, 1))[0], depth_logits

    def forward(self, points: Sequence[torch.Tensor], **inputs: Any) -> dict[str, Any]:
        """``{"detection": CenterHead maps, "segmentation": [B, K, H, W] logits, "depth_logits": [B, D, h, w] or
        None}`` for clouds ``points`` (``B x [P_b, point_features]``) and the optional ``tokens`` inputs."""
        if not points:
            raise ValueError("points must be a non-empty list of clouds [P, point_features]")
        tokens, depth_logits = self.tokens(points, **inputs)
        batch = {"voxel_features": tokens.features, "voxel_coords": tokens.indices, "batch_size": len(points)}
        bev = self.bev_backbone(height_compression(self.backbone(batch)["encoded_spconv_tensor"]))
        return {
            "detection": self.detection_head(bev),
            "segmentation": self.segmentation_head(bev),
            "depth_logits": depth_logits,
        }
