"""Learning-rate schedules that the domains' LightningModules share."""

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, floor: float = 0.0) -> dict:
    """Lightning's ``lr_scheduler`` entry for a per-step schedule: a linear warm-up over ``warmup_steps`` (step
    ``s`` at ``(s + 1) / warmup_steps`` of the peak), then a cosine from the peak down to ``floor`` times it at
    ``total_steps`` (held there after). ``warmup_steps`` is capped at ``total_steps - 1``."""
    total = max(total_steps, 1)
    warmup = min(warmup_steps, total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}
