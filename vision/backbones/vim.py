"""Vision Mamba (Vim; Zhu et al., ICML 2024, arXiv:2401.09417; github.com/hustvl/Vim) as a timm model.

An image becomes ``M`` patch tokens (a conv with kernel 16 and stride 16, or stride 8 for the fine-tuned "+"
models), a learned class token is inserted in the middle (position ``M // 2``), and a learned absolute position
embedding is added to all ``M + 1`` tokens. ``depth`` pre-norm residual blocks follow,

    x <- x + DropPath_i(BiMamba_i(RMSNorm_i(x)))          # the residual stream x in float32

and a final RMSNorm; the classifier reads the class token. BiMamba is our ``mamba`` mixer with Vim's
``bimamba_type="v2"``: shared in/out projections, separate forward and backward conv1d, ``x_proj``, ``dt_proj``,
``A`` and ``D``, the two gated outputs averaged (``divide_out``); d_state 16, expand 2, d_conv 4,
``dt_rank = ceil(D / 16)``.

Vim writes the same blocks in "Add -> RMSNorm -> Mixer" order so that mamba-ssm's fused kernel
(``rms_norm_fn(prenorm=True, residual_in_fp32=True)``) adds the previous mixer output into a float32 residual and
normalises it in one launch; the drop-path rate of mixer ``i`` is ``linspace(0, drop_path_rate, depth)[i]``
there too (block ``i`` drops the output of mixer ``i - 1``, the final norm the last one). Written as plain pre-norm
blocks it is the same arithmetic, including the float32 residual and norm.

Sizes (parameters with the 1000-class head, as the official model counts them; the README rounds them):
tiny D = 192: 7,148,008 (7M); small D = 384: 25,796,584 (26M); base D = 768: 97,598,440 (98M).
"""

import math

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, lecun_normal_, resample_abs_pos_embed, to_2tuple, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ...core.mixers import build_mixer
from ...kernels.layer_norm import rms_norm
from .checks import check_image
from .loading import ReportsIncompatibleKeys, unwrap_checkpoint


class VimPatchEmbed(nn.Module):
    """``[B, C, H, W]`` image -> ``[B, M, D]`` tokens: a conv with kernel ``patch_size`` and stride ``stride``.

    The grid is ``(H - patch_size) // stride + 1`` per side (27 x 27 for 224 px at stride 8); the image must be
    exactly ``img_size`` (the position embedding is learned for that grid) and tile it without a remainder.
    """

    def __init__(self, img_size, patch_size: int, stride: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size, self.stride, self.in_chans = to_2tuple(img_size), patch_size, stride, in_chans
        for side in self.img_size:
            if side < patch_size or (side - patch_size) % stride:
                raise ValueError(
                    f"img_size {self.img_size} does not tile into {patch_size}px patches at stride {stride}: each "
                    f"side must be {patch_size} + k * {stride} for an integer k >= 0"
                )
        self.grid_size = tuple((side - patch_size) // stride + 1 for side in self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_chans)
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"the image must be {self.img_size[0]}x{self.img_size[1]} (the model's img_size, for which the "
                f"position embedding is learned), got {x.shape[-2]}x{x.shape[-1]}; build the model with img_size="
            )
        return self.proj(x).flatten(2).transpose(1, 2)


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim, computed in float32, returned in the weight's
    dtype (mamba-ssm's ``RMSNorm``, eps 1e-5)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps, out_dtype=self.weight.dtype)


class VimBlock(nn.Module):
    """``x [B, L, D]`` float32 -> ``x + DropPath(BiMamba(RMSNorm(x)))``, float32 (module docstring)."""

    def __init__(self, dim: int, d_state: int, expand: int, norm_eps: float, drop_path: float) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, norm_eps)
        self.mixer = build_mixer(
            "mamba", d_model=dim, d_state=d_state, expand=expand, bidirectional=True, divide_out=True
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.mixer(self.norm(x))
        return x + self.drop_path(y)  # float32 + 16-bit promotes to float32 in the add itself (no cast kernel)


class VisionMamba(ReportsIncompatibleKeys, nn.Module):
    """Vision Mamba with timm's model interface.

    Args:
        img_size: input size (int or (H, W)); fixed, as the position embedding is learned per token.
        patch_size, stride: the patch conv (16, 16; stride 8 for the "+" models).
        in_chans, num_classes: input channels and classes (0: no classifier).
        global_pool: ``"token"`` (the middle class token, Vim's), ``"avg"`` (mean of the patch tokens) or ``""``.
        embed_dim, depth: width ``D`` and number of blocks (192/384/768 and 24 in the paper).
        d_state, expand: the Mamba state size ``N`` and inner width ``expand * D``.
        norm_eps: RMSNorm epsilon.
        drop_rate: dropout before the classifier; pos_drop_rate: dropout after the position embedding (Vim's
            ``drop_rate``); drop_path_rate: stochastic depth, linear in depth (Vim trains tiny with 0, small 0.05).

    ``forward_features`` returns all ``M + 1`` tokens ``[B, M + 1, D]`` after the final norm (the class token at
    ``cls_index``); ``forward_head`` pools them.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        stride: int | None = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 192,
        depth: int = 24,
        d_state: int = 16,
        expand: int = 2,
        norm_eps: float = 1e-5,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        _check_pool(global_pool)
        stride = patch_size if stride is None else stride
        self.num_classes, self.global_pool, self.in_chans = num_classes, global_pool, in_chans
        self.embed_dim = self.num_features = self.head_hidden_size = embed_dim
        self.grad_checkpointing = False

        self.patch_embed = VimPatchEmbed(img_size, patch_size, stride, in_chans, embed_dim)
        self.cls_index = self.patch_embed.num_patches // 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linspace(0, rate, depth)
        self.blocks = nn.Sequential(*[VimBlock(embed_dim, d_state, expand, norm_eps, rate) for rate in rates])
        self.norm = RMSNorm(embed_dim, norm_eps)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=stride) for i in range(depth)]
        self._init_weights(depth)

    def _init_weights(self, depth: int) -> None:
        """Vim's init: truncated normal (std 0.02) for the tokens and the classifier, LeCun normal for the patch conv,
        mamba-ssm's init in the mixers, with ``out_proj`` scaled by ``1 / sqrt(depth)`` (GPT-2's rescaling)."""
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            for block in self.blocks:
                block.mixer.out_proj.weight.div_(math.sqrt(depth))

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^cls_token|pos_embed|patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            _check_pool(global_pool)
            self.global_pool = global_pool
        weight = self.pos_embed
        self.head = (
            nn.Linear(self.embed_dim, num_classes, device=weight.device, dtype=weight.dtype)
            if num_classes > 0
            else nn.Identity()
        )

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, M + 1, D]`` float32: patches, the class token at ``cls_index``, positions."""
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([x[:, : self.cls_index], cls, x[:, self.cls_index :]], dim=1)
        return self.pos_drop(x.float() + self.pos_embed.float())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> all tokens ``[B, M + 1, D]`` after the final norm (unpooled)."""
        x = self._embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``[B, M + 1, D]`` tokens -> ``[B, num_classes]`` (``[B, D]`` with ``pre_logits``)."""
        if self.global_pool == "token":
            x = x[:, self.cls_index]
        elif self.global_pool == "avg":
            x = torch.cat([x[:, : self.cls_index], x[:, self.cls_index + 1 :]], dim=1).mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ):
        """Block outputs (the residual stream after each chosen block) as timm's ViT returns them.

        Args:
            indices: the last ``n`` blocks if an int, all if None, else these block indices.
            return_prefix_tokens: pair each map with its class token ``[B, 1, D]``.
            norm: apply the final norm to the intermediates.
            stop_early: stop after the last block asked for.
            output_fmt: ``"NCHW"`` (``[B, D, gh, gw]`` patch maps) or ``"NLC"`` (``[B, M, D]`` patch tokens).
            intermediates_only: return only the list.

        Returns:
            ``(forward_features output, intermediates)`` or the intermediates; the class token is removed from
            every intermediate.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        blocks = self.blocks[: max_index + 1] if stop_early else self.blocks
        x = self._embed(x)
        intermediates = []
        for i, block in enumerate(blocks):
            x = checkpoint(block, x) if self.grad_checkpointing and not torch.jit.is_scripting() else block(x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm else x)
        prefix_tokens = [y[:, self.cls_index : self.cls_index + 1] for y in intermediates]
        intermediates = [torch.cat([y[:, : self.cls_index], y[:, self.cls_index + 1 :]], dim=1) for y in intermediates]
        if output_fmt == "NCHW":
            grid_h, grid_w = self.patch_embed.grid_size
            intermediates = [y.reshape(y.shape[0], grid_h, grid_w, -1).permute(0, 3, 1, 2) for y in intermediates]
            intermediates = [y.contiguous() for y in intermediates]
        if return_prefix_tokens:
            intermediates = list(zip(intermediates, prefix_tokens, strict=True))
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last of ``indices`` (and the final norm / classifier if asked)."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


def _check_pool(global_pool: str) -> None:
    if global_pool not in ("token", "avg", ""):
        raise ValueError(f"global_pool must be 'token' (the middle class token), 'avg' or '', got {global_pool!r}")


def checkpoint_filter_fn(state_dict: dict, model: VisionMamba) -> dict[str, torch.Tensor]:
    """Map a checkpoint released with hustvl/Vim (``{"model": ...}`` with ``layers.{i}.*``, ``norm_f``) onto
    ``model``'s names (``blocks.{i}.*``, ``norm``); the mixer keys are the same. Our own checkpoints pass
    unchanged. A position embedding learned for another grid (224 px weights in a 384 px or stride-8 model) is
    resampled bicubically around the middle class token, as Vim's fine-tuning does."""
    state_dict = unwrap_checkpoint(state_dict)
    out = {}
    for key, value in state_dict.items():
        if key.startswith("layers."):
            key = "blocks." + key[len("layers.") :]
        elif key.startswith("norm_f."):
            key = "norm." + key[len("norm_f.") :]
        out[key] = value
    pos_embed = out.get("pos_embed")
    if pos_embed is not None and pos_embed.shape[1] != model.pos_embed.shape[1]:
        out["pos_embed"] = _resample_pos_embed(pos_embed, model.patch_embed.grid_size)
    return out


def _resample_pos_embed(pos_embed: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """``[1, M + 1, D]`` with the class slot at ``M // 2`` from a square grid -> the same for ``grid_size``."""
    num_patches = pos_embed.shape[1] - 1
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"cannot resample a position embedding of {num_patches} patches: not a square grid")
    middle = num_patches // 2
    cls, patches = pos_embed[:, middle : middle + 1], torch.cat([pos_embed[:, :middle], pos_embed[:, middle + 1 :]], 1)
    patches = resample_abs_pos_embed(patches, list(grid_size), [side, side], num_prefix_tokens=0)
    new_middle = grid_size[0] * grid_size[1] // 2
    return torch.cat([patches[:, :new_middle], cls, patches[:, new_middle:]], dim=1)


def _cfg(**kwargs) -> dict:
    """Pretrained config without a download source: pass the released file with
    ``pretrained=True, pretrained_cfg_overlay=dict(file=path)``."""
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "fixed_input_size": True,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2401.09417",
        "origin_url": "https://github.com/hustvl/Vim",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "vim_tiny_patch16_224.in1k": _cfg(notes=("weights: huggingface.co/hustvl/Vim-tiny-midclstok (76.1 %)",)),
        "vim_tiny_patch16_stride8_224.in1k": _cfg(
            notes=("weights: huggingface.co/hustvl/Vim-tiny-midclstok (78.3 %)",)
        ),
        "vim_small_patch16_224.in1k": _cfg(notes=("weights: huggingface.co/hustvl/Vim-small-midclstok (80.5 %)",)),
        "vim_small_patch16_stride8_224.in1k": _cfg(
            notes=("weights: huggingface.co/hustvl/Vim-small-midclstok (81.6 %)",)
        ),
        "vim_base_patch16_224.in1k": _cfg(notes=("weights: huggingface.co/hustvl/Vim-base-midclstok (81.9 %)",)),
    }
)


def _create_vim(variant: str, pretrained: bool = False, **kwargs) -> VisionMamba:
    out_indices = kwargs.pop("out_indices", 3)
    return build_model_with_cfg(
        VisionMamba,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )


@register_model
def vim_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-T (D 192, 24 blocks): 76.1 % ImageNet top-1."""
    model_args = dict(patch_size=16, embed_dim=192, depth=24)
    return _create_vim("vim_tiny_patch16_224", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_tiny_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-T+ (stride 8, 27 x 27 patches): 78.3 % after 30 epochs of fine-tuning Vim-T."""
    model_args = dict(patch_size=16, stride=8, embed_dim=192, depth=24)
    return _create_vim("vim_tiny_patch16_stride8_224", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_small_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-S (D 384, 24 blocks): 80.5 %."""
    model_args = dict(patch_size=16, embed_dim=384, depth=24)
    return _create_vim("vim_small_patch16_224", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_small_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-S+ (stride 8): 81.6 % after fine-tuning Vim-S."""
    model_args = dict(patch_size=16, stride=8, embed_dim=384, depth=24)
    return _create_vim("vim_small_patch16_stride8_224", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_base_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    """Vim-B (D 768, 24 blocks): 81.9 %."""
    model_args = dict(patch_size=16, embed_dim=768, depth=24)
    return _create_vim("vim_base_patch16_224", pretrained, **dict(model_args, **kwargs))
