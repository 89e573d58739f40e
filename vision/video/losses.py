"""The training loss of the official ConvS5 code: ``loss_weight * MSE + (1 - loss_weight) * L1`` on next frames."""

import torch


def next_frame_loss(
    prediction: torch.Tensor, target: torch.Tensor, loss_weight: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, mse, l1)`` for frames ``[B, T, C, H, W]``: the squared and absolute errors are each summed over a
    row's width and channels and averaged over batch, time and rows (the official reduction of ``[B, T, H, W, C]``
    over its last two axes), and ``loss = loss_weight * mse + (1 - loss_weight) * l1``."""
    error = prediction - target
    per_row = error.shape[-1] * error.shape[-3]
    mse, l1 = error.square().mean() * per_row, error.abs().mean() * per_row
    return loss_weight * mse + (1 - loss_weight) * l1, mse, l1
