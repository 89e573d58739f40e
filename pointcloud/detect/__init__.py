"""The 3D detector's pieces: box geometry and IoU, rotated NMS, the CenterPoint head, synthetic scenes."""

from .bev_average_precision import BEVAveragePrecision
from .box_iou import bev_intersection_area, bev_iou, iou_3d
from .boxes import bev_corners, points_in_boxes
from .center_head import CenterHead, focal_loss
from .center_targets import CenterTargets, assign_targets, gaussian_radius
from .kitti_ap import KittiAP
from .nms import rotated_nms
from .synthetic import SYNTHETIC_CLASSES, SyntheticScene, synthetic_scene

__all__ = [
    "SYNTHETIC_CLASSES",
    "BEVAveragePrecision",
    "CenterHead",
    "CenterTargets",
    "KittiAP",
    "SyntheticScene",
    "assign_targets",
    "bev_corners",
    "bev_intersection_area",
    "bev_iou",
    "focal_loss",
    "gaussian_radius",
    "iou_3d",
    "points_in_boxes",
    "rotated_nms",
    "synthetic_scene",
]
