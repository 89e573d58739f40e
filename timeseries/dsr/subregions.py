"""Symbolic codes of piecewise-linear DSR models: which linear subregions an orbit uses, and how it moves between them.

For the AL-RNN the code of a state is ``d_t = (z_t[M-P:] > 0) ∈ {0,1}^P`` (``model.subregion``); a region's id is
its bits read as a binary number, most significant first. On a long free-running orbit the used subregions are
ranked by visit frequency (symbol 0 = most visited), the transition graph counts consecutive pairs (self-loops are
dwell), and each used subregion gets its fixed point and stability (``model.fixed_points``).
"""

from dataclasses import dataclass

import torch

from .models import FixedPoints, PiecewiseLinearRNN


def bits_to_ids(bits: torch.Tensor) -> torch.Tensor:
    """Region ids ``int64 [...]`` of bits ``bool [..., P]`` (binary, most significant bit first; P <= 62)."""
    if not isinstance(bits, torch.Tensor):
        raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
    P = bits.shape[-1] if bits.dim() else 0
    if bits.dim() < 1 or P > 62:
        raise ValueError(f"bits must have shape [..., P] with 1 <= P <= 62, got {tuple(bits.shape)}")
    weights = 2 ** torch.arange(P - 1, -1, -1, device=bits.device)
    return (bits.long() * weights).sum(-1)


def ids_to_bits(ids: torch.Tensor, P: int) -> torch.Tensor:
    """Inverse of ``bits_to_ids``: ``int [...]`` -> ``bool [..., P]``."""
    return (ids.long()[..., None] >> torch.arange(P - 1, -1, -1, device=ids.device)) & 1 == 1


@dataclass
class SymbolicCode:
    """The symbolic code of an orbit of ``T`` states.

    Attributes:
        bits: ``[K, n_bits]`` bool, the used subregions, most visited first.
        counts: ``[K]`` int64, visits of each used subregion.
        symbols: ``[T]`` int64, the orbit's sequence of symbols (row index into ``bits``).
        transitions: ``[K, K]`` int64, ``transitions[i, j]`` = number of steps from symbol i to symbol j.
        fixed_points: fixed point and stability of each used subregion (``None`` if not computed).
    """

    bits: torch.Tensor
    counts: torch.Tensor
    symbols: torch.Tensor
    transitions: torch.Tensor
    fixed_points: FixedPoints | None = None

    @property
    def frequencies(self) -> torch.Tensor:
        """``[K]`` visit fractions."""
        return self.counts.double() / self.counts.sum()

    @property
    def transition_probabilities(self) -> torch.Tensor:
        """``[K, K]`` row-stochastic: ``P(next = j | now = i)`` (rows of never-left final symbols are zero)."""
        t = self.transitions.double()
        return t / t.sum(1, keepdim=True).clamp_min(1)

    @property
    def connectome(self) -> torch.Tensor:
        """``[K, K]`` transition counts normalised to sum 1 (the "geometric graph", self-loops = dwell)."""
        t = self.transitions.double()
        return t / t.sum().clamp_min(1)


def symbolic_code_from_bits(bits: torch.Tensor) -> SymbolicCode:
    """The code of an orbit given its region bits ``bool [T, n_bits]`` (``T >= 1``)."""
    if not isinstance(bits, torch.Tensor):
        raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
    if bits.dim() != 2 or bits.shape[0] < 1:
        raise ValueError(f"bits must have shape [T >= 1, n_bits], got {tuple(bits.shape)}")
    patterns, inverse, counts = torch.unique(bits.bool(), dim=0, return_inverse=True, return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    symbols = rank[inverse]
    K = order.numel()
    pairs = symbols[:-1] * K + symbols[1:]
    transitions = torch.bincount(pairs, minlength=K * K).reshape(K, K)
    return SymbolicCode(patterns[order], counts[order], symbols, transitions)


@torch.no_grad()
def symbolic_code(
    model: PiecewiseLinearRNN, z0: torch.Tensor, steps: int = 100_000, transient: int = 0
) -> tuple[SymbolicCode, torch.Tensor]:
    """Free-run ``model`` from ``z0 [M]`` or ``[1, M]`` for ``transient + steps`` states, drop the transient, code it.

    Returns the code (with the fixed point and stability of each used subregion) and the orbit ``[steps, M]``.
    """
    if not isinstance(model, PiecewiseLinearRNN):
        raise TypeError(f"model must be a PiecewiseLinearRNN, got {type(model).__name__}")
    if isinstance(transient, bool) or not isinstance(transient, int) or transient < 0:
        raise ValueError(f"transient must be an int >= 0, got {transient!r}")
    if isinstance(z0, torch.Tensor) and z0.dim() == 1:
        z0 = z0[None]
    if isinstance(z0, torch.Tensor) and z0.dim() == 2 and z0.shape[0] != 1:
        raise ValueError(f"z0 must be one state [M] or [1, M], got {tuple(z0.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    orbit = model.generate(z0, transient + steps)[0, transient:]
    code = symbolic_code_from_bits(model.subregion(orbit))
    code.fixed_points = model.fixed_points(code.bits)
    return code, orbit
