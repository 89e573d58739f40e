"""One LION layer: linear-RNN operator blocks over equal-size voxel groups, in x order then in y order.

For each direction ``d`` in ``directions`` (LION: ``("x", "y")``) the voxels are sorted in LION's ``d`` window order,
cut into groups of ``group_size`` (``window_groups.py``), run through that direction's operator block as a batch of
sequences ``[G, group_size, C]``, and scattered back; the recurrence crosses window boundaries inside a group (no
masking), as in LION.

The operator block owns its norm and residual, as LION's operator wrappers do (``DropPath`` on each branch):

* post-norm (LION's Mamba ``Block``):  ``x + DropPath(LayerNorm(mixer(x)))``;
* pre-norm (LION's RetNet and RWKV blocks; xLSTM's ViL blocks without the FFN):
  ``x + DropPath(mixer(LayerNorm(x)))``, then, with ``mlp_ratio > 0``,
  ``x + DropPath(FFN(LayerNorm(x)))``: ``Linear(C, r C) -> GELU -> Linear(r C, C)``, or for ``rwkv6`` RWKV's channel
  mixing (``core/mixers/rwkv_channel_mix.py``), as Vision-RWKV's block has it.

Every operator block has an index in the backbone (LION's ``layer_id`` of ``n_layer``: one per direction of each
LION layer, in the order the backbone runs them). RWKV-6 initialises its time and channel mixing from it, and its
first block (index 0) normalises its input once more (``ln0``), as LION's RWKV ``Block`` does.

``norm_first`` and ``mlp_ratio`` default to LION's layout for the operator (``LION_BLOCK_LAYOUT``); ``gla``, absent
from LION, takes RetNet's; other registered mixers default to pre-norm without MLP. The mixer comes from
``lrnn.core.mixers.build_mixer(operator, d_model, **cfg)``, where ``cfg`` is ``operator_cfg`` over LION's choices
(``LION_OPERATOR_CFG``): Mamba and RWKV-6 read each group both ways, summing the two scans inside the mixer.

LION's xLSTM operator is a pair of blocks, each with its own norm, residual and parameters (Vision-LSTM's
``ViLBlock`` from the top left, then one from the bottom right): for ``mlstm`` each direction runs two operator
blocks in turn, the second with ``reverse=True`` (``LION_OPERATOR_PASSES``).
"""

from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import DropPath
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..core.mixers import build_mixer
from ..core.mixers.rwkv_channel_mix import RWKVChannelMix
from .window_groups import GroupLayout, group_layout, group_windows

LION_BLOCK_LAYOUT: dict[str, tuple[bool, float]] = {  # operator -> (norm_first, mlp_ratio)
    "mamba": (False, 0.0),
    "retnet": (True, 4.0),
    "rwkv6": (True, 4.0),
    "mlstm": (True, 0.0),
    "gla": (True, 4.0),
}
LION_OPERATOR_CFG: dict[str, dict[str, Any]] = {  # operator -> LION's mixer settings, under operator_cfg
    "mamba": {"bidirectional": True},
    "rwkv6": {"bidirectional": True},
    "retnet": {"rotary": False, "output_gate": False, "out_gain": 2**-2.5},  # LION's MultiScaleRetention
}
LION_LAYER_INDEXED = ("rwkv6",)  # operators initialised by their block's index (layer_idx, num_layers)
LION_NORM_EPS: dict[str, float] = {"retnet": 1e-6}  # operator -> its blocks' LayerNorm epsilon (default 1e-5)
LION_LAYER_SCALE: dict[str, float] = {"rwkv6": 1e-5}  # operator -> initial layer scale (Vision-RWKV's init_values)
LION_OPERATOR_PASSES: dict[str, tuple[dict[str, Any], ...]] = {  # operator -> blocks run in turn per direction
    "mlstm": ({}, {"reverse": True}),
}


class LIONOperatorBlock(nn.Module):
    """A registry mixer with its own norm, residual and drop path: ``[G, L, C] -> [G, L, C]``; ``operator_cfg``
    overrides LION's mixer settings (``LION_OPERATOR_CFG``). With ``layer_scale`` (LION's RWKV blocks: 1e-5,
    ``LION_LAYER_SCALE``), each residual branch is multiplied by a learned per-channel scale starting there.
    ``layer_idx`` of ``num_layers``: the block's index in the backbone (used by ``LION_LAYER_INDEXED`` operators)."""

    def __init__(
        self,
        operator: str,
        d_model: int,
        operator_cfg: dict[str, Any] | None = None,
        drop_path: float = 0.0,
        norm_first: bool | None = None,
        mlp_ratio: float | None = None,
        use_checkpoint: bool = False,
        layer_scale: float | None = None,
        layer_idx: int = 0,
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        default_norm_first, default_mlp_ratio = LION_BLOCK_LAYOUT.get(operator, (True, 0.0))
        self.norm_first = default_norm_first if norm_first is None else norm_first
        mlp_ratio = default_mlp_ratio if mlp_ratio is None else mlp_ratio
        if mlp_ratio < 0:
            raise ValueError(f"mlp_ratio must be >= 0, got {mlp_ratio}")
        self.use_checkpoint = use_checkpoint
        self.layer_idx, self.num_layers = layer_idx, num_layers
        indexed = operator in LION_LAYER_INDEXED
        place = {"layer_idx": layer_idx, "num_layers": num_layers} if indexed else {}
        cfg = {**LION_OPERATOR_CFG.get(operator, {}), **place, **(operator_cfg or {})}
        self.mixer = build_mixer(operator, d_model=d_model, **cfg)
        self.input_norm = nn.LayerNorm(d_model) if indexed and layer_idx == 0 else None
        eps = LION_NORM_EPS.get(operator, 1e-5)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.drop_path = DropPath(drop_path)
        self.mlp = None
        if mlp_ratio > 0:
            self.mlp_norm = nn.LayerNorm(d_model, eps=eps)
            if operator == "rwkv6":
                self.mlp = RWKVChannelMix(d_model, mlp_ratio, layer_idx, num_layers)
            else:
                hidden = round(mlp_ratio * d_model)
                self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        layer_scale = LION_LAYER_SCALE.get(operator) if layer_scale is None else layer_scale
        self.mixer_scale = self.mlp_scale = None
        if layer_scale is not None:
            self.mixer_scale = nn.Parameter(torch.full((d_model,), float(layer_scale)))
            if self.mlp is not None:
                self.mlp_scale = nn.Parameter(torch.full((d_model,), float(layer_scale)))

    @staticmethod
    def _scaled(branch: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        return branch if scale is None else branch * scale

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm is not None:
            x = self.input_norm(x)
        branch = self.norm(self.mixer(x)[0]) if not self.norm_first else self.mixer(self.norm(x))[0]
        x = x + self.drop_path(self._scaled(branch, self.mixer_scale))
        if self.mlp is not None:
            x = x + self.drop_path(self._scaled(self.mlp(self.mlp_norm(x)), self.mlp_scale))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [G, L, C]`` (groups of voxel features) -> ``[G, L, C]``; recomputed in backward if ``use_checkpoint``."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class LIONLayer(nn.Module):
    """LION's ``LIONLayer``: one operator block per direction, each over that direction's window groups (for
    ``mlstm``, a forward block then a reversed one, ``nn.Sequential``); direction ``j``'s blocks have the index
    ``layer_idx + j`` of ``num_layers``."""

    def __init__(
        self,
        d_model: int,
        window_shape: Sequence[int],
        group_size: int,
        operator: str,
        operator_cfg: dict[str, Any] | None = None,
        shift: bool = False,
        directions: Sequence[str] = ("x", "y"),
        drop_path: float | Sequence[float] = 0.0,
        use_checkpoint: bool = False,
        layer_idx: int = 0,
        num_layers: int | None = None,
    ) -> None:
        super().__init__()
        num_layers = layer_idx + len(directions) if num_layers is None else num_layers
        if len(window_shape) != 3:
            raise ValueError(f"window_shape must be (w_x, w_y, w_z), got {list(window_shape)}")
        if any(direction not in ("x", "y") for direction in directions):
            raise ValueError(f"directions must be 'x' or 'y', got {list(directions)}")
        drop_paths = [drop_path] * len(directions) if isinstance(drop_path, int | float) else list(drop_path)
        if len(drop_paths) != len(directions):
            raise ValueError(f"drop_path needs one rate per direction {list(directions)}, got {drop_paths}")
        self.window_shape = tuple(window_shape)
        self.group_size = group_size
        self.shift = shift
        self.directions = tuple(directions)
        passes = LION_OPERATOR_PASSES.get(operator, ({},))

        def block(rate: float, setting: dict[str, Any], index: int) -> LIONOperatorBlock:
            cfg = {**(operator_cfg or {}), **setting}
            return LIONOperatorBlock(
                operator, d_model, cfg, rate, use_checkpoint=use_checkpoint, layer_idx=index, num_layers=num_layers
            )

        self.blocks = nn.ModuleList(
            block(rate, passes[0], layer_idx + j)
            if len(passes) == 1
            else nn.Sequential(*(block(rate, s, layer_idx + j) for s in passes))
            for j, rate in enumerate(drop_paths)
        )

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        batch_size: int,
        spatial_shape: Sequence[int],
        layout: GroupLayout | None = None,
    ) -> torch.Tensor:
        """``features [N, C]`` of the voxels at unique ``coords [N, 4]`` (batch, z, y, x) on a grid ``spatial_shape
        (Z, Y, X)`` -> new features ``[N, C]``. ``layout``: ``group_layout(coords, batch_size, group_size)``, shared
        by both directions (computed here when not given; a layer on the same voxels may pass it on)."""
        if features.ndim != 2 or len(features) != len(coords):
            raise ValueError(
                f"features must be [N, C] with N = len(coords) = {len(coords)}, got shape {tuple(features.shape)}"
            )
        layout = group_layout(coords, batch_size, self.group_size) if layout is None else layout
        for direction, block in zip(self.directions, self.blocks, strict=True):
            groups = group_windows(
                coords, batch_size, spatial_shape, self.window_shape, self.group_size, direction, self.shift, layout
            )
            features = groups.scatter(block(groups.gather(features)))
        return features
