"""OpenPCDet's ``BACKBONE_3D`` input contract, shared by the 3D backbones."""

from typing import Any

import torch


def read_voxel_batch(batch_dict: dict[str, Any], input_channels: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``voxel_features [N, input_channels]``, ``voxel_coords [N, 4]`` (batch, z, y, x) and ``batch_size`` from an
    OpenPCDet batch dict; ``ValueError`` naming the shapes otherwise."""
    features, coords, batch_size = (batch_dict[key] for key in ("voxel_features", "voxel_coords", "batch_size"))
    if features.ndim != 2 or features.shape[1] != input_channels or coords.shape != (len(features), 4):
        raise ValueError(
            f"voxel_features must be [N, {input_channels}] and voxel_coords [N, 4] (batch, z, y, x), got "
            f"{tuple(features.shape)} and {tuple(coords.shape)}"
        )
    return features, coords, int(batch_size)
