"""Training-time augmentations of point-cloud scenes: ground-truth sampling and global flip, rotation, scaling."""

from .global_transforms import RandomGlobalTransform, flip_x, rotate_z, scale
from .gt_database import GTDatabase, build_gt_database
from .gt_sampling import GTSampler

__all__ = [
    "GTDatabase",
    "GTSampler",
    "RandomGlobalTransform",
    "build_gt_database",
    "flip_x",
    "rotate_z",
    "scale",
]
