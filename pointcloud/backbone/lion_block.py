"""LION's U-shaped ``LIONBlock``: LION layers at ``depth + 1`` scales, merging down and expanding back up.

With ``down_scales = [s_0, ..., s_{depth-1}]`` (LION: ``[[2, 2, 2], [2, 2, 2]]``)::

    for i in 0..depth-1:                       # encoder
        x = x + PE_i(coords of x)              # learned position embedding
        x = LIONLayer(shift = i is odd)(x);  skip_i = x
        x, inverse_i = VoxelMerging(s_i)(x)    # SFD, merge, LayerNorm
    for j in 0..depth-1, i = depth-1-j:        # decoder, from the coarsest scale
        x = LIONLayer(shift = j is odd)(x)
        x = LayerNorm(skip_i + x[inverse_i])   # expand onto the finer voxels

``PE(p) = Linear(C, C)(ReLU(BatchNorm1d(Linear(3, C)(p))))`` with each coordinate centred and scaled to
``[-pi, pi]`` over the whole grid: ``p_x = 2 pi (x - X / 2) / X``. The window and group sizes stay the same in voxel
units at every scale, so the coarse layers see farther. Each LION layer holds one operator block per direction
(``x``, ``y``), so a block holds ``4 depth`` operator blocks (8 in LION), indexed from ``first_layer_idx`` as LION
numbers them: encoder level ``i`` from ``first + 2 i``, decoder level ``i`` from ``first + 2 (depth + i)`` (with
two directions). The decoder layers at the scales the encoder ran at (all but the coarsest) reuse its group layout
(``window_groups.group_layout``, one host read per scale).
"""

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..lion_layer import LIONLayer
from ..sparse_conv import SparseConvTensor
from ..window_groups import GroupLayout, group_layout
from .merge import VoxelMerging, expand_voxels


class VoxelPositionEmbedding(nn.Module):
    """LION's ``PositionEmbeddingLearned`` on voxel coordinates: ``coords [N, 4]`` (batch, z, y, x) -> ``[N, C]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, coords: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
        xyz = coords[:, 1:].flip(1).float()
        size = torch.stack([xyz.new_full((), cells) for cells in spatial_shape[::-1]])  # (X, Y, Z), no host copy
        return self.mlp((xyz - size / 2) / size * (2 * math.pi))


class LIONBlock(nn.Module):
    """``SparseConvTensor`` features ``[N, C]`` -> the same voxels with new features ``[N, C]``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        down_scales: Sequence[Sequence[int]],
        window_shape: Sequence[int],
        group_size: int,
        operator: str,
        operator_cfg: dict[str, Any] | None = None,
        directions: Sequence[str] = ("x", "y"),
        shift: bool = True,
        drop_path: float = 0.0,
        use_checkpoint: bool = False,
        first_layer_idx: int = 0,
        num_layers: int | None = None,
    ) -> None:
        super().__init__()
        num_layers = first_layer_idx + 2 * depth * len(directions) if num_layers is None else num_layers
        if len(down_scales) != depth:
            raise ValueError(f"down_scales needs one (s_x, s_y, s_z) per level (depth {depth}), got {down_scales}")

        def lion_layer(level: int, index: int) -> LIONLayer:
            return LIONLayer(
                dim,
                window_shape,
                group_size,
                operator,
                operator_cfg,
                shift=shift and level % 2 == 1,
                directions=directions,
                drop_path=drop_path,
                use_checkpoint=use_checkpoint,
                layer_idx=first_layer_idx + index * len(directions),
                num_layers=num_layers,
            )

        self.group_size = group_size
        self.position_embeddings = nn.ModuleList(VoxelPositionEmbedding(dim) for _ in range(depth))
        self.encoder = nn.ModuleList(lion_layer(level, level) for level in range(depth))
        self.merges = nn.ModuleList(VoxelMerging(dim, scale) for scale in down_scales)
        self.decoder = nn.ModuleList(lion_layer(level, depth + level) for level in range(depth))
        self.decoder_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))

    def _layout(self, x: SparseConvTensor) -> GroupLayout:
        return group_layout(x.indices, x.batch_size, self.group_size)

    @staticmethod
    def _run(layer: LIONLayer, x: SparseConvTensor, layout: GroupLayout) -> SparseConvTensor:
        return x.replace_feature(layer(x.features, x.indices, x.batch_size, x.spatial_shape, layout))

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        skips, inverses, layouts = [], [], []
        for embed, layer, merge in zip(self.position_embeddings, self.encoder, self.merges, strict=True):
            x = x.replace_feature(x.features + embed(x.indices, x.spatial_shape))
            layouts.append(self._layout(x))
            x = self._run(layer, x, layouts[-1])
            skips.append(x)
            x, inverse = merge(x)
            inverses.append(inverse)
        layouts = [self._layout(x), *layouts[:0:-1]]  # decoder j runs at scale depth - j, the encoder's for j > 0
        for layer, norm, skip, inverse, layout in zip(
            self.decoder, self.decoder_norms, skips[::-1], inverses[::-1], layouts, strict=True
        ):
            x = expand_voxels(self._run(layer, x, layout), skip, inverse)
            x = x.replace_feature(norm(x.features))
        return x
