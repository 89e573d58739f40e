"""Input checks shared by the image backbones, raised before any layer runs."""

import torch


def check_image(x: object, in_chans: int) -> torch.Tensor:
    """Raise unless ``x`` is a real floating ``[B, in_chans, H, W]`` image batch; return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"the image must be a torch.Tensor [B, C, H, W], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"the image must be a floating tensor, got dtype {x.dtype}")
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(f"the image must be [B, C, H, W] with C = in_chans = {in_chans}, got shape {tuple(x.shape)}")
    return x
