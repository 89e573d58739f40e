"""Helpers for testing scan faces against the float64 reference: inputs, losses and error measures."""

import torch


def high_precision(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype.is_complex else torch.float64


def gates(shape, strength: str, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Gates ``a`` near 1 (long memory), near 0 (short memory) or spread over (0, 1); complex gates get a phase."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    magnitude = {"near_one": 1 - 1e-3 * u, "near_zero": 1e-2 * u, "uniform": u}[strength]
    if dtype.is_complex:
        phase = 2 * torch.pi * torch.rand(shape, generator=generator, dtype=torch.float64)
        return torch.polar(magnitude, phase).to(dtype)
    return magnitude.to(dtype)


def randn(shape, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    if dtype.is_complex:
        return torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)).to(dtype)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def scalar_loss(h, final_state, grad_h, grad_final):
    """``Re <h, dh> + Re <h_T, dh_T>``: its gradients are the vector-Jacobian products with ``dh`` and ``dh_T``."""
    loss = (h * grad_h.to(h.dtype).conj()).real.sum()
    if final_state is not None:
        loss = loss + (final_state * grad_final.to(final_state.dtype).conj()).real.sum()
    return loss


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``||value - reference|| / ||reference||`` computed in float64 on the CPU; NaN anywhere gives inf."""
    value, reference = value.detach().cpu().to(high_precision(reference.dtype)), reference.detach().cpu()
    if torch.isnan(value).any():
        return float("inf")
    return float((value - reference).norm() / reference.norm().clamp_min(1e-30))
