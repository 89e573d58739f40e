"""LION's voxel generation ("diffusion", ``PatchMerging3D(diffusion=True)``): empty voxels beside the strongest ones.

LION runs it in every merge between stages (config ``DIFFUSION: True``, ``DIFF_SCALE: 0.2``), on the features
``F [N, C]`` that the SFD gives, just before the voxels are merged. Per sample ``b`` holding ``N_b`` voxels::

    score_i = mean_c F[i, c]                          # channel-mean response, no extra supervision
    K_b     = floor(diff_scale * N_b)                 # 0 for samples of fewer than 1 / diff_scale voxels
    top_b   = the K_b voxels of sample b with the highest scores; equal scores: the smaller (z, y, x) first
    each (b, z, y, x) in top_b adds 4 voxels (b, z, clamp(y + dy, 0, Y - 1), clamp(x + dx, 0, X - 1))
    for (dy, dx) in (-1, -1), (-1, 1), (1, -1), (1, 1), all with zero features

Clamping (as LION does) keeps every new voxel in the grid; at the edge it moves a diagonal neighbour onto a side
neighbour or onto the voxel itself. New voxels may repeat originals or one another: the merge that follows folds
them in (with ``reduce="sum"``, LION's, a zero feature adds nothing), and LION layers after it fill them in.
"""

from collections.abc import Sequence

import torch

from ..sparse_conv import SparseConvTensor
from ..window_groups import bin_counts

DIAGONAL_OFFSETS = ((-1, -1), (-1, 1), (1, -1), (1, 1))  # (dy, dx)


def check_diff_scale(diff_scale: float, name: str = "diff_scale") -> float:
    """``diff_scale`` as a float; ``ValueError`` naming ``name`` unless it lies in [0, 1]."""
    if not 0.0 <= float(diff_scale) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (the fraction of voxels that generate), got {diff_scale}")
    return float(diff_scale)


def select_top_voxels(
    scores: torch.Tensor, indices: torch.Tensor, spatial_shape: Sequence[int], batch_size: int, diff_scale: float
) -> torch.Tensor:
    """The rows of ``top_b`` for every sample (see the module docstring): ``scores [N]``, ``indices [N, 4]``
    (batch, z, y, x) on the grid ``spatial_shape (Z, Y, X)`` -> ``[M]`` int64, ordered by sample, then score
    (highest first), then ``(z, y, x)``."""
    _, size_y, size_x = spatial_shape
    coords = indices.long()
    batch = coords[:, 0]
    order = torch.argsort((coords[:, 1] * size_y + coords[:, 2]) * size_x + coords[:, 3], stable=True)
    order = order[torch.argsort(scores[order], descending=True, stable=True)]
    order = order[torch.argsort(batch[order], stable=True)]
    counts = bin_counts(batch, batch_size)
    keep_counts = (counts.double() * diff_scale).floor().long()
    sorted_batch = batch[order]
    rank = torch.arange(len(order), device=order.device) - (counts.cumsum(0) - counts)[sorted_batch]
    return order[rank < keep_counts[sorted_batch]]


def diagonal_neighbours(indices: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """``indices [M, 4]`` (batch, z, y, x) -> ``[4 M, 4]``: rows ``k M + i`` are voxel ``i`` moved by
    ``DIAGONAL_OFFSETS[k]`` in (y, x) and clamped to the grid ``spatial_shape (Z, Y, X)``."""
    _, size_y, size_x = spatial_shape
    batch_z, y, x = indices[:, :2], indices[:, 2:3], indices[:, 3:]
    return torch.cat(
        [
            torch.cat([batch_z, (y + dy).clamp(0, size_y - 1), (x + dx).clamp(0, size_x - 1)], dim=1)
            for dy, dx in DIAGONAL_OFFSETS
        ]
    )


def generate_voxels(x: SparseConvTensor, diff_scale: float) -> SparseConvTensor:
    """``x`` (features ``[N, C]``) -> features ``[N + 4 M, C]`` and indices ``[N + 4 M, 4]``: the ``N`` voxels of
    ``x`` unchanged, then zero features at the diagonal neighbours of the ``M`` top voxels. The indices may repeat:
    the result is meant for ``merge_voxels``. Scores do not carry gradients; the kept features do."""
    diff_scale = check_diff_scale(diff_scale)
    rows = select_top_voxels(x.features.detach().mean(1), x.indices, x.spatial_shape, x.batch_size, diff_scale)
    new_indices = diagonal_neighbours(x.indices[rows], x.spatial_shape)
    features = torch.cat([x.features, x.features.new_zeros(len(new_indices), x.features.shape[1])])
    return SparseConvTensor(features, torch.cat([x.indices, new_indices]), x.spatial_shape, x.batch_size)
