"""Initialisers of the official JAX/Flax ConvS5 code, so the PyTorch models start where the authors' do.

Both draw from a normal truncated at two standard deviations and rescaled so the variance is ``scale / fan_in``
(``jax.nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")``).
"""

import math

import torch
from torch import nn

TRUNCATED_STD = 0.87962566103423978
"""Standard deviation of a unit normal truncated to [-2, 2]."""


def truncated_fan_in_normal_(tensor: torch.Tensor, fan_in: int, scale: float) -> torch.Tensor:
    """Fill ``tensor`` in place with a normal truncated to two std devs, of variance ``scale / fan_in``."""
    std = math.sqrt(scale / fan_in) / TRUNCATED_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std)


def he_normal(*shape: int, fan_in: int) -> torch.Tensor:
    """A new tensor of ``shape`` from ``he_normal``: variance ``2 / fan_in`` (ConvS5's B and C, ConvLSTM's kernel)."""
    return truncated_fan_in_normal_(torch.empty(shape), fan_in, 2.0)


def reset_like_flax(module: nn.Module) -> nn.Module:
    """Flax's defaults for every ``Conv2d`` and ``Linear`` in ``module``: LeCun normal weights (variance
    ``1 / fan_in``, truncated), zero biases. Norm layers keep ones and zeros, as in both frameworks."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
            truncated_fan_in_normal_(layer.weight, fan_in, 1.0)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
