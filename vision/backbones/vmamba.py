"""VMamba (Liu et al., NeurIPS 2024, arXiv:2401.10166; github.com/MzeroMiko/VMamba) as a timm model.

A hierarchical backbone of four stages (channels ``C, 2C, 4C, 8C`` at strides 4, 8, 16, 32), each a downsample
(none in stage 0) and VSS blocks::

    x <- x + DropPath(SS2D(LayerNorm(x)))
    x <- x + DropPath(Mlp(LayerNorm(x)))            # GELU, hidden mlp_ratio * C; absent when mlp_ratio = 0

then a LayerNorm, global average pooling and the classifier. Maps are channels-last ``[B, H, W, C]`` throughout
(``output_fmt = "NHWC"``, like timm's Swin and MambaOut); ``forward_intermediates`` returns NCHW by default.

The configurations of the official ``vmamba.py`` (``stem_version`` is its ``patchembed_version``):

| name              | depths     | C   | d_state | ssm_ratio | mlp | gate (z) | conv bias | stem | downsample |
|-------------------|------------|-----|---------|-----------|-----|----------|-----------|------|------------|
| vmamba_tiny_s1l8  | 2, 2, 8, 2 | 96  | 1       | 1.0       | 4   | no       | no        | v2   | v3         |
| vmamba_small_s2l15| 2, 2, 15, 2| 96  | 1       | 2.0       | 4   | no       | no        | v2   | v3         |
| vmamba_base_s2l15 | 2, 2, 15, 2| 128 | 1       | 2.0       | 4   | no       | no        | v2   | v3         |
| vmamba_tiny_v0    | 2, 2, 9, 2 | 96  | 16      | 2.0       | 0   | yes      | yes       | v1   | v1         |

``vmamba_tiny_v0`` is the authors' ``vanilla_vmamba_tiny`` (VMamba v0). Stem v1 is a 4x4 stride-4 conv + LayerNorm;
v2 two 3x3 stride-2 convs (C/2 then C) with LayerNorm + GELU between and a LayerNorm after. Downsample v1 is Swin's
patch merging (2x2 neighbours concatenated, LayerNorm, linear 4C -> 2C); v3 a 3x3 stride-2 conv + LayerNorm.
The authors train with drop_path_rate 0.2 (tiny, both), 0.3 (small), 0.6 (base).
"""

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, DropPath, Mlp, get_device_dtype, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ...kernels.layer_norm import LayerNorm
from .checks import check_image
from .loading import ReportsIncompatibleKeys, unwrap_checkpoint
from .ss2d import SS2D


class PatchifyStem(nn.Module):
    """Stem v1: ``[B, C_in, H, W]`` -> ``[B, H/4, W/4, C]`` by a 4x4 stride-4 conv and a LayerNorm; ``H`` and ``W``
    must be multiples of 32 (this stem and three patch mergings)."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.conv = nn.Conv2d(in_chans, dim, kernel_size=4, stride=4)
        self.norm = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_chans)
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(
                f"VMamba v0 (patchify stem, patch-merging downsamples) needs H and W divisible by 32, got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        return self.norm(self.conv(x).permute(0, 2, 3, 1))


class ConvStem(nn.Module):
    """Stem v2: ``[B, C_in, H, W]`` -> ``[B, ceil(H/4), ceil(W/4), C]`` by conv3x3/2 (C/2), LayerNorm, GELU,
    conv3x3/2 (C), LayerNorm."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.conv1 = nn.Conv2d(in_chans, dim // 2, kernel_size=3, stride=2, padding=1)
        self.norm1 = LayerNorm(dim // 2)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(dim // 2, dim, kernel_size=3, stride=2, padding=1)
        self.norm2 = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_chans)
        x = self.act(self.norm1(self.conv1(x).permute(0, 2, 3, 1)))
        return self.norm2(self.conv2(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """Downsample v1 (Swin's): ``[B, H, W, C]`` -> ``[B, H/2, W/2, C_out]``, concatenating the 2x2 neighbours in
    the order (even h, even w), (odd h, even w), (even h, odd w), (odd h, odd w), then LayerNorm(4C) and a linear
    map without bias."""

    def __init__(self, dim: int, dim_out: int) -> None:
        super().__init__()
        self.norm = LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, dim_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class ConvDownsample(nn.Module):
    """Downsample v3: ``[B, H, W, C]`` -> ``[B, ceil(H/2), ceil(W/2), C_out]`` by a 3x3 stride-2 conv and a
    LayerNorm."""

    def __init__(self, dim: int, dim_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim_out, kernel_size=3, stride=2, padding=1)
        self.norm = LayerNorm(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


STEMS = {"v1": PatchifyStem, "v2": ConvStem}
DOWNSAMPLES = {"v1": PatchMerging, "v3": ConvDownsample}


class VSSBlock(nn.Module):
    """``[B, H, W, C]`` -> same: an SS2D branch and, when ``mlp_ratio > 0``, an MLP branch, both pre-norm residual
    with the same drop-path rate. Under autocast the residual stream stays float32 and the pre-norms return the
    autocast dtype, which their linear layers would cast to anyway."""

    def __init__(self, dim: int, drop_path: float, mlp_ratio: float, **ss2d_args) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, to_autocast_dtype=True)
        self.mixer = SS2D(dim, **ss2d_args)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = LayerNorm(dim, to_autocast_dtype=True) if mlp_ratio > 0 else None
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU) if mlp_ratio > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm(x)))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class VMambaStage(nn.Module):
    """A downsample from ``dim`` to ``dim_out`` (``""``: none) and ``len(drop_paths)`` VSS blocks of ``dim_out``."""

    def __init__(self, dim: int, dim_out: int, downsample: str, drop_paths: list[float], **block_args) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = DOWNSAMPLES[downsample](dim, dim_out) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[VSSBlock(dim_out, rate, **block_args) for rate in drop_paths])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


class VMamba(ReportsIncompatibleKeys, nn.Module):
    """VMamba with timm's model interface (module docstring for the configurations).

    Args:
        in_chans, num_classes, global_pool: input channels, classes (0: no classifier), pooling (``"avg"``/``""``).
        depths, dims: blocks and channels per stage.
        d_state, ssm_ratio, dt_rank, gate, conv_bias: the SS2D settings (``ss2d.SS2D``).
        mlp_ratio: MLP width per block (0: no MLP, v0).
        stem_version: ``"v1"`` patchify or ``"v2"`` two convs; downsample_version: ``"v1"`` patch merging or
            ``"v3"`` conv.
        drop_rate: dropout before the classifier; drop_path_rate: stochastic depth, linear over all blocks.

    ``forward_features`` returns the normalised last-stage map ``[B, H/32, W/32, 8C]`` (unpooled).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        depths: tuple[int, ...] = (2, 2, 8, 2),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        d_state: int = 1,
        ssm_ratio: float = 1.0,
        dt_rank: int | str = "auto",
        gate: bool = False,
        conv_bias: bool = False,
        mlp_ratio: float = 4.0,
        stem_version: str = "v2",
        downsample_version: str = "v3",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != len(dims) or not depths:
            raise ValueError(f"depths and dims need one entry per stage, got {depths} and {dims}")
        if stem_version not in STEMS or downsample_version not in DOWNSAMPLES:
            raise ValueError(
                f"stem_version must be one of {sorted(STEMS)} and downsample_version one of {sorted(DOWNSAMPLES)}, "
                f"got {stem_version!r} and {downsample_version!r}"
            )
        self.num_classes, self.in_chans, self.global_pool = num_classes, in_chans, global_pool
        self.stem_version, self.downsample_version = stem_version, downsample_version
        self.num_features = dims[-1]
        self.output_fmt = "NHWC"
        self.stem = STEMS[stem_version](in_chans, dims[0])
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linspace(0, rate, total)
        block_args = dict(
            mlp_ratio=mlp_ratio, d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, gate=gate, conv_bias=conv_bias
        )
        stages, self.feature_info, start = [], [], 0
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            downsample = downsample_version if i > 0 else ""
            stages.append(VMambaStage(dims[max(i - 1, 0)], dim, downsample, rates[start : start + depth], **block_args))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"stages.{i}"))
            start += depth
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm(dims[-1])
        self.head = ClassifierHead(dims[-1], num_classes, pool_type=global_pool, drop_rate=drop_rate, input_fmt="NHWC")
        self.head_hidden_size = self.num_features
        self.apply(_init_weights)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        if coarse:
            return dict(stem=r"^stem", blocks=r"^stages\.(\d+)")
        stages = [(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None)]
        return dict(stem=r"^stem", blocks=[*stages, (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool, in_features=self.num_features, **get_device_dtype(self))
        self.head_hidden_size = self.num_features
        if global_pool is not None:
            self.global_pool = global_pool

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, H, W]`` -> ``[B, H/32, W/32, 8C]`` after the final LayerNorm (unpooled)."""
        return self.norm(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``[B, h, w, 8C]`` -> ``[B, num_classes]`` (``[B, 8C]`` pooled with ``pre_logits``)."""
        return self.head(x, pre_logits=True) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ):
        """Stage outputs as timm's hierarchical models return them.

        Args:
            indices: the last ``n`` stages if an int, all if None, else these stage indices.
            norm: apply the final LayerNorm to the last stage's map (the only one it is sized for).
            stop_early: stop after the last stage asked for.
            output_fmt: ``"NCHW"`` or ``"NHWC"``.
            intermediates_only: return only the list.

        Returns:
            ``(final map, intermediates)`` or the intermediates; stage ``i`` has ``dims[i]`` channels at stride
            ``4 * 2^i``.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        stages = self.stages[: max_index + 1] if stop_early else self.stages
        x = self.stem(x)
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                y = self.norm(x) if norm and i == last else x
                intermediates.append(y.permute(0, 3, 1, 2).contiguous() if output_fmt == "NCHW" else y)
        if intermediates_only:
            return intermediates
        return (self.norm(x) if len(stages) - 1 == last else x), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices``, and the norm and head when they no longer fit."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        self.stages = self.stages[: max_index + 1]
        if prune_end:
            self.num_features = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices


def _init_weights(module: nn.Module) -> None:
    """VMamba's init: linear layers truncated normal (std 0.02) with zero bias, LayerNorms ones and zeros; convs
    and the SS2D projections keep theirs."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


_STEM_NAMES = {
    "v1": {"0": "conv", "2": "norm", "proj": "conv", "norm": "norm"},
    "v2": {"0": "conv1", "2": "norm1", "5": "conv2", "7": "norm2"},
}
_DOWNSAMPLE_NAMES = {"v1": {"1": "norm", "2": "reduction"}, "v3": {"1": "conv", "3": "norm"}}
_BLOCK_NAMES = {"ln_1": "norm", "self_attention": "mixer", "op": "mixer"}
_HEAD_NAMES = {"classifier.norm": "norm", "classifier.head": "head.fc", "head": "head.fc"}


def checkpoint_filter_fn(state_dict: dict, model: VMamba) -> dict[str, torch.Tensor]:
    """Map a checkpoint released with MzeroMiko/VMamba onto ``model``'s names; our own pass unchanged.

    Official names (``vmamba.py``): ``patch_embed.{0,2,5,7}`` (stem v2 convs and norms; ``{0,2}`` for v1),
    ``layers.{i}.blocks.{j}.{norm,op,norm2,mlp}``, ``layers.{i}.downsample.{1,3}`` (v3 conv, norm) or ``{1,2}``
    (v1 norm, reduction) at the *end* of stage ``i``, ``classifier.{norm,head}``. The first (v0) release used
    ``patch_embed.{proj,norm}``, ``ln_1``, ``self_attention``, ``downsample.{norm,reduction}``, ``norm``, ``head``.
    Ours: ``stem.*``, ``stages.{i}.blocks.{j}.{norm,mixer,norm2,mlp}``, ``stages.{i+1}.downsample.*``, ``norm``,
    ``head.fc``. The SS2D parameters keep the official names.
    """
    state_dict = unwrap_checkpoint(state_dict)
    if any(key.startswith(("stem.", "stages.")) for key in state_dict):
        return state_dict
    stem_names, downsample_names = _STEM_NAMES[model.stem_version], _DOWNSAMPLE_NAMES[model.downsample_version]
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "patch_embed" and len(parts) > 2:
            parts[:2] = ["stem", stem_names.get(parts[1], parts[1])]
        elif parts[0] == "layers" and len(parts) > 4 and parts[2] == "blocks":
            parts[0], parts[4] = "stages", _BLOCK_NAMES.get(parts[4], parts[4])
        elif parts[0] == "layers" and len(parts) > 4 and parts[2] == "downsample":
            parts[:4] = ["stages", str(int(parts[1]) + 1), "downsample", downsample_names.get(parts[3], parts[3])]
        elif len(parts) > 1:
            module = ".".join(parts[:-1])
            parts = [_HEAD_NAMES.get(module, module), parts[-1]]
        out[".".join(parts)] = value
    return out


def _cfg(**kwargs) -> dict:
    """Pretrained config without a download source: pass the released file with
    ``pretrained=True, pretrained_cfg_overlay=dict(file=path)``."""
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv1",
        "classifier": "head.fc",
        "license": "mit",
        "paper_ids": "arXiv:2401.10166",
        "origin_url": "https://github.com/MzeroMiko/VMamba",
        **kwargs,
    }


_RELEASES = "github.com/MzeroMiko/VMamba/releases/download/"
default_cfgs = generate_default_cfgs(
    {
        "vmamba_tiny_s1l8.in1k": _cfg(notes=(_RELEASES + "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth (82.6 %)",)),
        "vmamba_small_s2l15.in1k": _cfg(notes=(_RELEASES + "%23v2cls/vssm_small_0229_ckpt_epoch_222.pth (83.6 %)",)),
        "vmamba_base_s2l15.in1k": _cfg(notes=(_RELEASES + "%23v2cls/vssm_base_0229_ckpt_epoch_237.pth (83.9 %)",)),
        "vmamba_tiny_v0.in1k": _cfg(
            first_conv="stem.conv", notes=(_RELEASES + "%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth (82.2 %)",)
        ),
    }
)


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    return build_model_with_cfg(
        VMamba,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **kwargs,
    )


@register_model
def vmamba_tiny_s1l8(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T (v2, ssm_ratio 1, stage-3 depth 8): 30M parameters, 4.9G FLOPs, 82.6 % top-1."""
    model_args = dict(depths=(2, 2, 8, 2), dims=(96, 192, 384, 768), d_state=1, ssm_ratio=1.0)
    return _create_vmamba("vmamba_tiny_s1l8", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_small_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S (v2, ssm_ratio 2, stage-3 depth 15): 50M, 8.7G, 83.6 %."""
    model_args = dict(depths=(2, 2, 15, 2), dims=(96, 192, 384, 768), d_state=1, ssm_ratio=2.0)
    return _create_vmamba("vmamba_small_s2l15", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_base_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B (v2, C 128): 89M, 15.4G, 83.9 %."""
    model_args = dict(depths=(2, 2, 15, 2), dims=(128, 256, 512, 1024), d_state=1, ssm_ratio=2.0)
    return _create_vmamba("vmamba_base_s2l15", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_tiny_v0(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba v0 tiny (the authors' ``vanilla_vmamba_tiny``): z-gated SS2D with d_state 16, no MLP, patchify stem
    and patch merging; 23M, 5.6G, 82.2 %."""
    model_args = dict(
        depths=(2, 2, 9, 2),
        dims=(96, 192, 384, 768),
        d_state=16,
        ssm_ratio=2.0,
        gate=True,
        conv_bias=True,
        mlp_ratio=0.0,
        stem_version="v1",
        downsample_version="v1",
    )
    return _create_vmamba("vmamba_tiny_v0", pretrained, **dict(model_args, **kwargs))
