"""LION / UniLION linear-group-RNN voxel backbones and the 3D detector built on them.

Sparse convolution (``lrnn.pointcloud.sparse_conv``) is imported on its own, so that the rest works without spconv.
"""

from .kitti import KittiCalibration, KittiFrame, read_boxes, read_calibration, read_frame, read_points
from .lion_layer import LION_BLOCK_LAYOUT, LIONLayer, LIONOperatorBlock
from .voxelize import grid_size, voxelize
from .window_groups import WindowGroups, group_windows, window_sort_key

__all__ = [
    "LION_BLOCK_LAYOUT",
    "KittiCalibration",
    "KittiFrame",
    "LIONLayer",
    "LIONOperatorBlock",
    "WindowGroups",
    "grid_size",
    "group_windows",
    "read_boxes",
    "read_calibration",
    "read_frame",
    "read_points",
    "voxelize",
    "window_sort_key",
]
