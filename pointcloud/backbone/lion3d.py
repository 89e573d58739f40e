"""``LION3DBackbone``: LION's one-stride voxel backbone (``LION3DBackboneOneStride``) behind OpenPCDet's contract.

Pipeline for ``S`` stages (LION: 4, grid height 32 -> 2)::

    voxels [N, C_in] -> Linear to C (only when C_in != C)
    for s in 0..S-1:  LIONBlock(depth_s, window_s, group_s)  ->  VoxelMerging(stage_down_scale, z only: (1, 1, 2))
    LIONLayer(output_window_shape, output_group_size)  ->  encoded_spconv_tensor, grid (ceil(Z / 2^S), Y, X)

x and y are never downsampled between stages (BEV stride 1). With ``DIFFUSION: True`` each of these merges between
stages (not those inside the LION blocks) first generates voxels (``voxel_generation``): in each sample, the
``floor(DIFF_SCALE * N_b)`` voxels of highest channel-mean SFD response add zero-feature voxels at their four
(x +- 1, y +- 1) neighbours, so ``encoded_spconv_tensor`` also holds voxels where the input had none.

``model_cfg`` is a dict, an EasyDict or any attribute object; keys are read in OpenPCDet's upper case or in lower
case. Required: ``FEATURE_DIM``, ``DEPTHS``, ``WINDOW_SHAPE`` and ``GROUP_SIZE`` (one per stage; windows are
``(w_x, w_y, w_z)``), ``OPERATOR`` (``{NAME, CFG}``, or a name with ``OPERATOR_CFG`` beside it; the cfg goes to
the mixer's constructor; ``mamba`` defaults to bidirectional, as LION's).
Optional, LION's values by default: ``LAYER_DOWN_SCALES`` (per stage, per level, ``[2, 2, 2]``), ``STAGE_DOWN_SCALE``
``[1, 1, 2]``, ``OUTPUT_WINDOW_SHAPE`` ``[13, 13, 2]``, ``OUTPUT_GROUP_SIZE`` 256, ``DIRECTION`` ``['x', 'y']``,
``SHIFT`` True, ``DROP_PATH`` 0, ``USE_CHECKPOINT`` False, ``DIFF_SCALE`` 0.2 (in [0, 1]); ``DIFFUSION`` is False by
default (LION's configs set it True, with ``DIFF_SCALE: 0.2``).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..lion_layer import LIONLayer
from ..sparse_conv import SparseConvTensor
from .contract import read_voxel_batch
from .lion_block import LIONBlock
from .merge import VoxelMerging
from .voxel_generation import check_diff_scale

_REQUIRED = object()


def _setting(model_cfg: Any, name: str, default: Any = _REQUIRED) -> Any:
    for key in (name.upper(), name.lower()):
        if isinstance(model_cfg, Mapping) and key in model_cfg:
            return model_cfg[key]
        if not isinstance(model_cfg, Mapping) and hasattr(model_cfg, key):
            return getattr(model_cfg, key)
    if default is _REQUIRED:
        raise KeyError(f"model_cfg lacks {name.upper()} (see lrnn.pointcloud.backbone.lion3d for the keys)")
    return default


def read_config(model_cfg: Any) -> dict[str, Any]:
    """``model_cfg`` (see the module docstring) as a plain dict of lower-case keys with every default filled in."""
    operator = _setting(model_cfg, "operator")
    if isinstance(operator, str):
        name, operator_cfg = operator.lower(), dict(_setting(model_cfg, "operator_cfg", {}))
    else:
        name, operator_cfg = _setting(operator, "name").lower(), dict(_setting(operator, "cfg", {}))
    depths = [int(depth) for depth in _setting(model_cfg, "depths")]
    config = {
        "operator": name,
        "operator_cfg": dict(operator_cfg),  # LION's per-operator defaults come from lion_layer.LION_OPERATOR_CFG
        "feature_dim": int(_setting(model_cfg, "feature_dim")),
        "depths": depths,
        "layer_down_scales": _setting(model_cfg, "layer_down_scales", [[[2, 2, 2]] * depth for depth in depths]),
        "window_shape": _setting(model_cfg, "window_shape"),
        "group_size": _setting(model_cfg, "group_size"),
        "stage_down_scale": _setting(model_cfg, "stage_down_scale", [1, 1, 2]),
        "output_window_shape": _setting(model_cfg, "output_window_shape", [13, 13, 2]),
        "output_group_size": int(_setting(model_cfg, "output_group_size", 256)),
        "direction": list(_setting(model_cfg, "direction", ["x", "y"])),
        "shift": bool(_setting(model_cfg, "shift", True)),
        "drop_path": float(_setting(model_cfg, "drop_path", 0.0)),
        "use_checkpoint": bool(_setting(model_cfg, "use_checkpoint", False)),
        "diffusion": bool(_setting(model_cfg, "diffusion", False)),
        "diff_scale": check_diff_scale(_setting(model_cfg, "diff_scale", 0.2), "DIFF_SCALE"),
    }
    for key in ("layer_down_scales", "window_shape", "group_size"):
        if len(config[key]) != len(depths):
            raise ValueError(f"{key.upper()} needs one entry per stage ({len(depths)} DEPTHS), got {config[key]}")
    return config


class LION3DBackbone(nn.Module):
    """OpenPCDet ``BACKBONE_3D``: ``forward(batch_dict)`` reads ``voxel_features [N, input_channels]``,
    ``voxel_coords [N, 4]`` (batch, z, y, x) and ``batch_size``; writes ``encoded_spconv_tensor`` (features
    ``[N', C]`` on the grid ``output_spatial_shape``) and ``encoded_spconv_tensor_stride`` (1)."""

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
        self.config = read_config(model_cfg)
        self.input_channels = int(input_channels)
        self.grid_size = [int(size) for size in grid_size]  # (X, Y, Z)
        self.voxel_size = None if voxel_size is None else [float(v) for v in voxel_size]
        self.point_cloud_range = None if point_cloud_range is None else [float(v) for v in point_cloud_range]
        self.sparse_shape = self.grid_size[::-1]  # (Z, Y, X)
        cfg = self.config
        dim = cfg["feature_dim"]
        layer_options = {
            "operator": cfg["operator"],
            "operator_cfg": cfg["operator_cfg"],
            "directions": cfg["direction"],
            "drop_path": cfg["drop_path"],
            "use_checkpoint": cfg["use_checkpoint"],
        }
        self.input_projection = nn.Identity() if input_channels == dim else nn.Linear(input_channels, dim)
        blocks_per_layer = len(cfg["direction"])  # operator blocks, numbered as LION's layer_id of n_layer
        stage_starts = [0]
        for depth in cfg["depths"]:
            stage_starts.append(stage_starts[-1] + 2 * depth * blocks_per_layer)
        num_layers = stage_starts[-1] + blocks_per_layer
        self.stages = nn.ModuleList(
            LIONBlock(
                dim,
                depth,
                down_scales,
                window,
                group,
                shift=cfg["shift"],
                first_layer_idx=start,
                num_layers=num_layers,
                **layer_options,
            )
            for depth, down_scales, window, group, start in zip(
                cfg["depths"],
                cfg["layer_down_scales"],
                cfg["window_shape"],
                cfg["group_size"],
                stage_starts[:-1],
                strict=True,
            )
        )
        self.stage_merges = nn.ModuleList(
            VoxelMerging(dim, cfg["stage_down_scale"], diffusion=cfg["diffusion"], diff_scale=cfg["diff_scale"])
            for _ in cfg["depths"]
        )
        self.output_layer = LIONLayer(
            dim,
            cfg["output_window_shape"],
            cfg["output_group_size"],
            shift=cfg["shift"],
            layer_idx=stage_starts[-1],
            num_layers=num_layers,
            **layer_options,
        )
        self.num_point_features = dim

    @property
    def output_spatial_shape(self) -> list[int]:
        """The grid ``(Z', Y', X')`` of ``encoded_spconv_tensor``."""
        shape = list(self.sparse_shape)
        s_x, s_y, s_z = self.config["stage_down_scale"]
        for _ in self.stages:
            shape = [-(-shape[0] // s_z), -(-shape[1] // s_y), -(-shape[2] // s_x)]
        return shape

    @property
    def num_bev_features(self) -> int:
        """Channels after height compression, ``C * Z'`` (OpenPCDet's ``NUM_BEV_FEATURES``)."""
        return self.num_point_features * self.output_spatial_shape[0]

    def forward(self, batch_dict: dict[str, Any]) -> dict[str, Any]:
        features, coords, batch_size = read_voxel_batch(batch_dict, self.input_channels)
        x = SparseConvTensor(self.input_projection(features), coords.int(), self.sparse_shape, batch_size)
        for stage, merge in zip(self.stages, self.stage_merges, strict=True):
            x, _ = merge(stage(x))
        x = x.replace_feature(self.output_layer(x.features, x.indices, x.batch_size, x.spatial_shape))
        batch_dict["encoded_spconv_tensor"] = x
        batch_dict["encoded_spconv_tensor_stride"] = 1
        return batch_dict

    def init_args(self) -> dict[str, Any]:
        """The constructor's arguments, as plain data (what ``save_pretrained`` stores)."""
        return {
            "model_cfg": self.config,
            "input_channels": self.input_channels,
            "grid_size": self.grid_size,
            "voxel_size": self.voxel_size,
            "point_cloud_range": self.point_cloud_range,
        }

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``{"init_args", "state_dict"}`` to ``path`` for ``from_pretrained``, the tensors on the CPU whatever
        the device (a checkpoint saved on a GPU loads on any machine, with or without ``map_location``)."""
        state = {key: tensor.detach().cpu() for key, tensor in self.state_dict().items()}
        torch.save({"init_args": self.init_args(), "state_dict": state}, path)

    def _load_strictly(self, state_dict: Mapping[str, torch.Tensor], source: str | Path) -> "LION3DBackbone":
        expected, found = set(self.state_dict()), set(state_dict)
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        if missing or unexpected:
            raise KeyError(
                f"the checkpoint {source} does not fit this {type(self).__name__}: {len(missing)} missing keys "
                f"{missing}; {len(unexpected)} unexpected keys {unexpected}"
            )
        self.load_state_dict(state_dict, strict=True)
        return self

    def load_pretrained(self, path: str | Path) -> "LION3DBackbone":
        """Load the weights at ``path`` (a ``save_pretrained`` file or a bare state dict) strictly; returns self.

        Raises ``KeyError`` naming every missing and unexpected key."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        return self._load_strictly(checkpoint.get("state_dict", checkpoint), path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "LION3DBackbone":
        """The backbone saved by ``save_pretrained`` at ``path``, its weights loaded strictly (``load_pretrained``)."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if "init_args" not in checkpoint:
            raise KeyError(
                f"{path} holds no init_args (a bare state dict?): build the backbone from its config and call "
                "load_pretrained(path)"
            )
        return cls(**checkpoint["init_args"])._load_strictly(checkpoint["state_dict"], path)
