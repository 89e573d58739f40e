"""mmdetection3d face of ``LION3DBackbone``: a middle encoder from voxels to a dense BEV map, like ``SparseEncoder``.

``height_compression`` is OpenPCDet's ``HeightCompression``: the dense grid ``[B, C, D, H, W]`` viewed as
``[B, C * D, H, W]`` (channel ``c * D + d``). Register the encoder in mmdet3d >= 1.1 with
``MODELS.register_module(module=LION3DMiddleEncoder)`` and use it as ``middle_encoder``.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..sparse_conv import SparseConvTensor, to_dense
from .lion3d import LION3DBackbone


def height_compression(x: SparseConvTensor) -> torch.Tensor:
    """Sparse ``x`` on the grid ``(D, H, W)`` with ``C`` channels -> the dense BEV map ``[B, C * D, H, W]``."""
    dense = to_dense(x)
    batch, channels, depth, height, width = dense.shape
    return dense.reshape(batch, channels * depth, height, width)


class LION3DMiddleEncoder(nn.Module):
    """``forward(voxel_features [N, in_channels], coors [N, 4] (batch, z, y, x), batch_size)`` -> BEV
    ``[B, C * D', H, W]``; ``sparse_shape`` is mmdet3d's grid ``(Z, Y, X)``, ``model_cfg`` as ``LION3DBackbone``'s."""

    def __init__(self, in_channels: int, sparse_shape: Sequence[int], model_cfg: Any) -> None:
        super().__init__()
        self.backbone = LION3DBackbone(model_cfg, in_channels, grid_size=list(sparse_shape)[::-1])

    def forward(self, voxel_features: torch.Tensor, coors: torch.Tensor, batch_size: int) -> torch.Tensor:
        batch_dict = {"voxel_features": voxel_features, "voxel_coords": coors, "batch_size": batch_size}
        return height_compression(self.backbone(batch_dict)["encoded_spconv_tensor"])
