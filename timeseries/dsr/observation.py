"""DSR observation models: readouts ``x_t = g(z_t)``, latent initialisation, forcing signals."""

import math

import torch
from torch import nn


def _check_x(x: torch.Tensor, n: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] != n:
        raise ValueError(f"{name} must have shape [..., N={n}], got {tuple(x.shape)}")


class IdentityObservation(nn.Module):
    """Readouts are the first ``N`` of ``M`` latent units: ``x_t = z_t[:N]`` (AL-RNN, identity teacher forcing).

    The latent initialisation is ``z_1 = [x_1; L x_1]`` with a trainable ``L [M - N, N]`` (uniform
    ``±1/sqrt(N)``, as ``initialize_L`` in the authors' Julia code). The forcing signal of ``x_t`` is ``x_t``
    itself, to be written into the first ``N`` units.
    """

    def __init__(self, N: int, M: int) -> None:
        super().__init__()
        if not 1 <= N <= M:
            raise ValueError(f"IdentityObservation needs 1 <= N <= M, got N={N}, M={M}")
        self.N, self.M = N, M
        r = 1.0 / math.sqrt(N)
        self.L = nn.Parameter(torch.empty(M - N, N).uniform_(-r, r))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [..., M]`` -> ``x [..., N] = z[..., :N]``."""
        _check_x(z, self.M, "z")
        return z[..., : self.N]

    def init_state(self, x1: torch.Tensor) -> torch.Tensor:
        """``x1 [batch, N]`` -> ``z1 [batch, M] = [x1; x1 L^T]``."""
        _check_x(x1, self.N, "x1")
        return torch.cat([x1, x1 @ self.L.T], dim=-1)

    def forcing(self, x: torch.Tensor) -> torch.Tensor:
        """Forcing signal ``[..., N]`` for the first ``N`` latent units: ``x`` itself."""
        _check_x(x, self.N, "x")
        return x


class AffineObservation(nn.Module):
    """``x_t = B z_t + b`` with a trainable ``B [N, M]`` (kaiming uniform) and optional bias ``b [N]`` (GTF, Table 1).

    The latent initialisation and the forcing signals come from the pseudo-inverse:
    ``z_1 = B^+ (x_1 - b)``, ``ẑ_t = B^+ (x_t - b)`` (all ``M`` units are forced).
    ``condition_penalty`` keeps ``B`` well conditioned.
    """

    def __init__(self, N: int, M: int, bias: bool = True) -> None:
        super().__init__()
        if N < 1 or M < 1:
            raise ValueError(f"AffineObservation needs N >= 1 and M >= 1, got N={N}, M={M}")
        self.N, self.M = N, M
        self.B = nn.Parameter(torch.empty(N, M))
        nn.init.kaiming_uniform_(self.B, a=math.sqrt(5))
        self.b = nn.Parameter(torch.zeros(N)) if bias else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [..., M]`` -> ``x [..., N] = z B^T + b``."""
        _check_x(z, self.M, "z")
        x = z @ self.B.T
        return x if self.b is None else x + self.b

    def forcing(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., N]`` -> ``ẑ [..., M] = (x - b) (B^+)^T``."""
        _check_x(x, self.N, "x")
        if self.b is not None:
            x = x - self.b
        return x @ torch.linalg.pinv(self.B).T

    def init_state(self, x1: torch.Tensor) -> torch.Tensor:
        """``x1 [batch, N]`` -> ``z1 [batch, M] = B^+ (x1 - b)``."""
        return self.forcing(x1)

    def condition_penalty(self, weight: float = 1.0) -> torch.Tensor:
        """``weight * (1 - σ_max(B) / σ_min(B))^2``: zero for a perfectly conditioned ``B``, large near singular."""
        return condition_number_penalty(self.B, weight)


def condition_number_penalty(B: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """``weight * (1 - σ_max / σ_min)^2`` of the singular values of a matrix ``B [N, M]`` (differentiable)."""
    if not isinstance(B, torch.Tensor) or B.dim() != 2:
        raise ValueError(f"B must be a 2-d tensor, got {getattr(B, 'shape', type(B).__name__)}")
    s = torch.linalg.svdvals(B)
    return weight * (1.0 - s[0] / s[-1]).square()
