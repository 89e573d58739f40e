"""Per-series normalisation of an input window, undone on the forecast (RevIN without the affine part)."""

import torch


class SeriesNorm:
    """Statistics of one batch of input windows ``x [B, L, C]``: mean and std over time, per series and channel.

    ``normalize(x) = (x - mean) / std`` with ``std = sqrt(var + eps)`` (biased variance), and
    ``denormalize(y) = y * std + mean`` for a forecast ``y [B, H, C]``. The mean is detached, as in TPGN's
    authors' code; gradients flow through the std.
    """

    def __init__(self, x: torch.Tensor, eps: float = 1e-5) -> None:
        self.mean = x.mean(dim=1, keepdim=True).detach()
        self.std = torch.sqrt(torch.var(x - self.mean, dim=1, keepdim=True, unbiased=False) + eps)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean
