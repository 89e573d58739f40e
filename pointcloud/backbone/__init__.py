"""LION's voxel backbone: the spatial feature descriptor, voxel merging and generation, U-shaped LION blocks and the
full backbone with OpenPCDet's and mmdetection3d's interfaces. Needs sparse convolution
(``lrnn.pointcloud.sparse_conv``)."""

from .lion3d import LION3DBackbone, read_config
from .lion_block import LIONBlock, VoxelPositionEmbedding
from .merge import VoxelMerging, expand_voxels, merge_voxels
from .middle_encoder import LION3DMiddleEncoder, height_compression
from .sfd import SpatialFeatureDescriptor
from .voxel_generation import generate_voxels

__all__ = [
    "LION3DBackbone",
    "LION3DMiddleEncoder",
    "LIONBlock",
    "SpatialFeatureDescriptor",
    "VoxelMerging",
    "VoxelPositionEmbedding",
    "expand_voxels",
    "generate_voxels",
    "height_compression",
    "merge_voxels",
    "read_config",
]
