"""UniLION: LiDAR, camera and temporal tokens through one LION backbone, with detection and BEV segmentation."""

from .camera import PinholeCamera
from .camera_tokens import CameraVoxelTokens
from .model import UniLION
from .seg_head import BEVSegmentationHead, footprint_masks
from .temporal_tokens import TemporalTokens, transform_points, voxel_centres

__all__ = [
    "BEVSegmentationHead",
    "CameraVoxelTokens",
    "PinholeCamera",
    "TemporalTokens",
    "UniLION",
    "footprint_masks",
    "transform_points",
    "voxel_centres",
]
