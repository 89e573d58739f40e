"""Noisy periodic waveforms whose class is (shape, frequency band): a sequence task generated, never downloaded.

Class ``c`` has shape ``SHAPES[c % 3]`` and period ``base_period / 2**(c // 3)`` steps. Every sample draws its own
period jitter (+-15 %), phase, amplitude (0.6 to 1.4) and offset (+-0.5), and gets white Gaussian noise of std
``noise``. Shapes are scaled to unit RMS, so the class shows only in the waveform's form and period, not its
power.
"""

import math

import torch

SHAPES = ("sine", "square", "sawtooth")


def waveform_class_names(num_classes: int, base_period: float = 48.0) -> list[str]:
    """Readable names, e.g. ``"square/24"`` for a square wave of period 24 steps."""
    return [f"{SHAPES[c % 3]}/{base_period / 2 ** (c // 3):g}" for c in range(num_classes)]


def make_waveforms(
    n: int, length: int, num_classes: int, noise: float, base_period: float = 48.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled sequences, the same for the same arguments.

    Returns:
        ``x [n, length, 1]`` float32 and ``y [n]`` int64 in ``[0, num_classes)``, classes balanced to within one.
    """
    if n < 1 or length < 1:
        raise ValueError(f"n and length must be positive, got n={n} and length={length}")
    if not 2 <= num_classes <= 3 * 4:
        raise ValueError(f"num_classes must be in [2, 12] (3 shapes x up to 4 bands), got {num_classes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if base_period / 2 ** ((num_classes - 1) // 3) < 2:
        raise ValueError(f"base_period={base_period} leaves the fastest band under 2 steps per period")
    gen = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=gen) % num_classes
    uniform = lambda lo, hi: lo + (hi - lo) * torch.rand(n, 1, generator=gen)
    period = base_period / 2 ** (y // 3).unsqueeze(1) * uniform(0.85, 1.15)
    cycles = torch.arange(length, dtype=torch.float32) / period + uniform(0.0, 1.0)
    frac = cycles - cycles.floor()
    waves = torch.stack(
        [
            math.sqrt(2) * torch.sin(2 * math.pi * cycles),
            torch.where(frac < 0.5, 1.0, -1.0),
            math.sqrt(3) * (2 * frac - 1),
        ]
    )
    shape = waves[y % 3, torch.arange(n)]
    x = uniform(0.6, 1.4) * shape + uniform(-0.5, 0.5) + noise * torch.randn(n, length, generator=gen)
    return x.unsqueeze(-1), y
