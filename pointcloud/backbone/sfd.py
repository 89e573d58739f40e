"""LION's 3D spatial feature descriptor (SFD): local 3x3x3 neighbourhood mixing of sparse voxel features.

``SubMConv3d(C, C, 3, bias=False) -> LayerNorm -> GELU`` on the active voxels only (submanifold: the output has the
input's indices, in the input's order). LION runs it at the start of every voxel merge (``PatchMerging3D.sub_conv``)
to add the local 3D context that the window-ordered linear RNN lacks.
"""

from torch import nn

from ..sparse_conv import SparseConvTensor, SubMConv3d


class SpatialFeatureDescriptor(nn.Module):
    """``SparseConvTensor`` with features ``[N, C]`` -> the same indices with new features ``[N, C]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = SubMConv3d(dim, dim, 3, padding=1, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        x = self.conv(x)
        return x.replace_feature(self.act(self.norm(x.features)))
