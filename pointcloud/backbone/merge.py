"""LION's voxel merging and expanding (``PatchMerging3D`` / ``PatchExpanding3D``): coarser scales without convolution.

Merging by ``(s_x, s_y, s_z)``: a voxel ``(b, z, y, x)`` goes to the coarse voxel ``(b, z // s_z, y // s_y, x // s_x)``
of the grid ``(ceil(Z / s_z), ceil(Y / s_y), ceil(X / s_x))``; each coarse voxel's feature is the sum (LION) or the
mean of its fine voxels' features. ``inverse [N_fine]`` names each fine voxel's coarse voxel. Coarse voxels come out
sorted by ``(b, z, y, x)``, whatever the fine order.

Expanding is the way back: each fine voxel adds its coarse voxel's feature, ``fine + coarse[inverse]``.

``VoxelMerging`` is LION's whole ``PatchMerging3D``: SFD, optionally voxel generation (``diffusion``, LION's merges
between stages; ``voxel_generation``), the merge, LayerNorm.
"""

from collections.abc import Sequence

import torch
from torch import nn

from ..sparse_conv import SparseConvTensor
from .sfd import SpatialFeatureDescriptor
from .voxel_generation import check_diff_scale, generate_voxels


def merge_voxels(
    x: SparseConvTensor, down_scale: Sequence[int], reduce: str = "sum"
) -> tuple[SparseConvTensor, torch.Tensor]:
    """Merge the voxels of ``x`` (features ``[N, C]``) by ``down_scale (s_x, s_y, s_z)``; ``reduce`` is "sum" or
    "mean". Returns the coarse tensor (features ``[M, C]``) and ``inverse [N]`` int64 into its ``M`` voxels."""
    if len(down_scale) != 3 or min(down_scale) < 1:
        raise ValueError(f"down_scale must be 3 positive factors (s_x, s_y, s_z), got {list(down_scale)}")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    s_x, s_y, s_z = down_scale
    size_z, size_y, size_x = (-(-size // scale) for size, scale in zip(x.spatial_shape, (s_z, s_y, s_x), strict=True))
    coords = x.indices.long()
    b, z, y, x_ = coords[:, 0], coords[:, 1] // s_z, coords[:, 2] // s_y, coords[:, 3] // s_x
    key = ((b * size_z + z) * size_y + y) * size_x + x_
    unique_keys, inverse, counts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    features = x.features.new_zeros(len(unique_keys), x.features.shape[1]).index_add(0, inverse, x.features)
    if reduce == "mean":
        features = features / counts.to(features.dtype).unsqueeze(1)
    merged_coords = torch.stack(
        [
            unique_keys // (size_z * size_y * size_x),
            unique_keys // (size_y * size_x) % size_z,
            unique_keys // size_x % size_y,
            unique_keys % size_x,
        ],
        dim=1,
    )
    merged = SparseConvTensor(features, merged_coords.int(), [size_z, size_y, size_x], x.batch_size)
    return merged, inverse


def expand_voxels(coarse: SparseConvTensor, fine: SparseConvTensor, inverse: torch.Tensor) -> SparseConvTensor:
    """``fine`` with features ``fine.features [N, C] + coarse.features[inverse]``, ``inverse [N]`` from
    ``merge_voxels(fine, ...)``."""
    if len(inverse) != len(fine.features):
        raise ValueError(f"inverse must hold one index per fine voxel ({len(fine.features)}), got {len(inverse)}")
    return fine.replace_feature(fine.features + coarse.features[inverse])


class VoxelMerging(nn.Module):
    """LION's ``PatchMerging3D``: SFD, then (with ``diffusion``) ``generate_voxels(x, diff_scale)``, then
    ``merge_voxels`` (``reduce``; LION sums), LayerNorm. Generated voxels enter the merge with zero features, so the
    coarse voxels are those of the originals and of their generated neighbours.

    ``SparseConvTensor`` features ``[N, C]`` -> (coarse tensor, features ``[M, C]``; ``inverse [N]``, the coarse voxel
    of each input voxel)."""

    def __init__(
        self, dim: int, down_scale: Sequence[int], reduce: str = "sum", diffusion: bool = False, diff_scale: float = 0.2
    ) -> None:
        super().__init__()
        self.down_scale = tuple(down_scale)
        self.reduce = reduce
        self.diffusion = diffusion
        self.diff_scale = check_diff_scale(diff_scale)
        self.descriptor = SpatialFeatureDescriptor(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: SparseConvTensor) -> tuple[SparseConvTensor, torch.Tensor]:
        x = self.descriptor(x)
        count = len(x.features)
        if self.diffusion:
            x = generate_voxels(x, self.diff_scale)
        merged, inverse = merge_voxels(x, self.down_scale, self.reduce)
        return merged.replace_feature(self.norm(merged.features)), inverse[:count]
