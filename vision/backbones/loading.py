"""Loud checkpoint loading: a backbone never drops a checkpoint key, or keeps its initial value, silently."""

import warnings

import torch


class ReportsIncompatibleKeys:
    """Mixin for ``nn.Module``: ``load_state_dict`` names every missing and unexpected key.

    ``strict=True`` raises PyTorch's error (which lists them all) with a hint about the authors' checkpoints;
    ``strict=False`` loads what matches and warns with the full lists, so a model whose weights were not found is
    never trained from scratch unnoticed (the VMamba detection backbone's ``strict=False`` load only printed).
    Shape mismatches raise in both modes, as in PyTorch.
    """

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        try:
            result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as error:
            raise RuntimeError(
                f"{error}\nA checkpoint released by the authors must be remapped first: load it with "
                "timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=path)), or pass it "
                "through this model's checkpoint_filter_fn(state_dict, model)."
            ) from error
        if result.missing_keys or result.unexpected_keys:
            warnings.warn(
                f"{type(self).__name__}.load_state_dict(strict=False): {len(result.missing_keys)} missing keys keep "
                f"their initial values: {result.missing_keys}; {len(result.unexpected_keys)} unexpected keys were "
                f"ignored: {result.unexpected_keys}",
                stacklevel=2,
            )
        return result


def unwrap_checkpoint(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The state dict inside a training checkpoint (``{"model": ...}`` or ``{"state_dict": ...}``), or itself."""
    for key in ("model", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint
