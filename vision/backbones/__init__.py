"""Mamba-style image backbones registered with timm: importing this package registers them.

``timm.create_model(name, ...)`` with ``name`` one of ``vim_tiny_patch16_224``, ``vim_tiny_patch16_stride8_224``,
``vim_small_patch16_224``, ``vim_small_patch16_stride8_224``, ``vim_base_patch16_224`` (Vision Mamba) or
``vmamba_tiny_s1l8``, ``vmamba_small_s2l15``, ``vmamba_base_s2l15``, ``vmamba_tiny_v0`` (VMamba). No weights are
downloaded: load a released checkpoint with ``pretrained=True, pretrained_cfg_overlay=dict(file=path)``; each
model's ``checkpoint_filter_fn`` maps the authors' key names onto ours, and a key left out on either side is named in
an error (or a warning with ``strict=False``). timm takes a file's ``model_ema`` weights when it has them, and its
``weights_only`` loader refuses files that pickle a training config (as Swin-style checkpoints do); the authors
evaluate ``model``, which ``model.load_state_dict(checkpoint_filter_fn(torch.load(path, weights_only=False), model))``
loads from a file you trust.
"""

from . import vim, vmamba
from .flops import count_flops, selective_scan_flops
from .ss2d import SS2D, cross_merge, cross_scan
from .vim import VisionMamba
from .vmamba import VMamba

__all__ = [
    "SS2D",
    "VMamba",
    "VisionMamba",
    "count_flops",
    "cross_merge",
    "cross_scan",
    "selective_scan_flops",
    "vim",
    "vmamba",
]
