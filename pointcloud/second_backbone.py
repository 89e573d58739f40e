"""``SECONDBackbone``: the plain sparse 3D CNN of SECOND (OpenPCDet's ``VoxelBackBone8x``), LION's speed peer.

Layers, for channels ``(c1, c2, c3, c4)`` (default ``(16, 32, 64, 64)``), each convolution followed by
``BatchNorm1d(eps=1e-3, momentum=0.01)`` and ReLU, on the grid ``(Z + 1, Y, X)`` (one extra z layer, as OpenPCDet)::

    conv_input  SubMConv3d(C_in -> c1, 3)
    conv1       SubMConv3d(c1 -> c1, 3)                                                     stride 1
    conv2       SparseConv3d(c1 -> c2, 3, stride 2, padding 1), 2 x SubMConv3d(c2 -> c2, 3)   stride 2
    conv3       SparseConv3d(c2 -> c3, 3, stride 2, padding 1), 2 x SubMConv3d(c3 -> c3, 3)   stride 4
    conv4       SparseConv3d(c3 -> c4, 3, stride 2, padding (0, 1, 1)), 2 x SubMConv3d(c4)   stride 8
    conv_out    SparseConv3d(c4 -> C_out, (3, 1, 1), stride (2, 1, 1))                       z only

A KITTI/Waymo grid of height 40 (41 with the extra layer) ends at height 2. Submanifold convolutions of one level
share their rulebook (``indice_key``). Parameter names follow ``VoxelBackBone8x`` (``conv2.0.0.weight``, ...).

``model_cfg`` (a dict or attribute object, keys in upper or lower case) may set ``CHANNELS`` (four numbers) and
``OUTPUT_CHANNELS`` (128); everything else is fixed as above.
"""

from collections.abc import Sequence
from typing import Any

from torch import nn

from .backbone.contract import read_voxel_batch
from .backbone.lion3d import _setting
from .sparse_conv import SparseConv3d, SparseConvTensor, SparseSequential, SubMConv3d

_STAGES = (  # (stride, padding (z, y, x)) of the down-sampling convolution of conv2, conv3, conv4
    (2, (1, 1, 1)),
    (2, (1, 1, 1)),
    (2, (0, 1, 1)),
)
_OUTPUT_KERNEL, _OUTPUT_STRIDE = (3, 1, 1), (2, 1, 1)


def _with_norm(conv: nn.Module, channels: int) -> SparseSequential:
    """``conv -> BatchNorm1d -> ReLU`` on the active voxels."""
    return SparseSequential(conv, nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01), nn.ReLU())


def _submanifold(channels_in: int, channels_out: int, key: str) -> SparseSequential:
    return _with_norm(SubMConv3d(channels_in, channels_out, 3, padding=1, bias=False, indice_key=key), channels_out)


def _conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class SECONDBackbone(nn.Module):
    """OpenPCDet ``BACKBONE_3D``: ``forward(batch_dict)`` reads ``voxel_features [N, input_channels]``,
    ``voxel_coords [N, 4]`` (batch, z, y, x) and ``batch_size``; writes ``encoded_spconv_tensor`` (features
    ``[N', C_out]`` on ``output_spatial_shape``), ``encoded_spconv_tensor_stride`` (8), and
    ``multi_scale_3d_features`` / ``multi_scale_3d_strides`` for ``x_conv1`` .. ``x_conv4`` (strides 1, 2, 4, 8)."""

    def __init__(
        self,
        model_cfg: Any,
        input_channels: int,
        grid_size: Sequence[int],
        voxel_size: Sequence[float] | None = None,
        point_cloud_range: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in _setting(model_cfg, "channels", (16, 32, 64, 64))]
        output_channels = int(_setting(model_cfg, "output_channels", 128))
        if len(channels) != 4 or min(channels + [output_channels]) < 1:
            raise ValueError(
                f"CHANNELS must be four positive numbers and OUTPUT_CHANNELS positive, got {channels}, "
                f"{output_channels}"
            )
        self.input_channels = int(input_channels)
        self.grid_size = [int(size) for size in grid_size]  # (X, Y, Z)
        self.voxel_size = None if voxel_size is None else [float(v) for v in voxel_size]
        self.point_cloud_range = None if point_cloud_range is None else [float(v) for v in point_cloud_range]
        self.sparse_shape = [self.grid_size[2] + 1, self.grid_size[1], self.grid_size[0]]  # (Z + 1, Y, X)

        self.conv_input = _submanifold(self.input_channels, channels[0], "subm1")
        self.conv1 = SparseSequential(_submanifold(channels[0], channels[0], "subm1"))
        stages = zip(channels[:-1], channels[1:], _STAGES, strict=True)
        for level, (c_in, c_out, (stride, padding)) in enumerate(stages, start=2):
            down = SparseConv3d(c_in, c_out, 3, stride, padding, bias=False, indice_key=f"spconv{level}")
            subm = [_submanifold(c_out, c_out, f"subm{level}") for _ in range(2)]
            setattr(self, f"conv{level}", SparseSequential(_with_norm(down, c_out), *subm))
        out = SparseConv3d(
            channels[3], output_channels, _OUTPUT_KERNEL, _OUTPUT_STRIDE, 0, bias=False, indice_key="spconv_down2"
        )
        self.conv_out = _with_norm(out, output_channels)
        if min(self.output_spatial_shape) < 1:
            raise ValueError(
                f"grid_size {self.grid_size} (X, Y, Z) is too small for SECOND's four down-samplings: the output grid "
                f"(Z', Y', X') would be {self.output_spatial_shape} (Z >= 24 keeps one output layer)"
            )
        self.num_point_features = output_channels
        self.backbone_channels = {f"x_conv{level + 1}": c for level, c in enumerate(channels)}

    @property
    def output_spatial_shape(self) -> list[int]:
        """The grid ``(Z', Y', X')`` of ``encoded_spconv_tensor``."""
        shape = list(self.sparse_shape)
        for stride, padding in _STAGES:
            shape = [_conv_size(size, 3, stride, pad) for size, pad in zip(shape, padding, strict=True)]
        return [_conv_size(size, k, s, 0) for size, k, s in zip(shape, _OUTPUT_KERNEL, _OUTPUT_STRIDE, strict=True)]

    @property
    def num_bev_features(self) -> int:
        """Channels after height compression, ``C_out * Z'`` (OpenPCDet's ``NUM_BEV_FEATURES``)."""
        return self.num_point_features * self.output_spatial_shape[0]

    def forward(self, batch_dict: dict[str, Any]) -> dict[str, Any]:
        features, coords, batch_size = read_voxel_batch(batch_dict, self.input_channels)
        x = SparseConvTensor(features, coords.int(), self.sparse_shape, batch_size)
        x_conv1 = self.conv1(self.conv_input(x))
        x_conv2 = self.conv2(x_conv1)
        x_conv3 = self.conv3(x_conv2)
        x_conv4 = self.conv4(x_conv3)
        batch_dict["encoded_spconv_tensor"] = self.conv_out(x_conv4)
        batch_dict["encoded_spconv_tensor_stride"] = 8
        batch_dict["multi_scale_3d_features"] = {
            "x_conv1": x_conv1,
            "x_conv2": x_conv2,
            "x_conv3": x_conv3,
            "x_conv4": x_conv4,
        }
        batch_dict["multi_scale_3d_strides"] = {"x_conv1": 1, "x_conv2": 2, "x_conv3": 4, "x_conv4": 8}
        return batch_dict
