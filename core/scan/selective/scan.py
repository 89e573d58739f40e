"""The public ``selective_scan`` and ``selective_scan_step``: validate once, then dispatch to a face."""

import torch

from ..backend import accumulation_dtype, scan_backend
from ..checks import check_scan_tensor, check_state, check_triton_runnable
from .composite import selective_scan_composite
from .discretize import effective_dt, per_channel, readout
from .op import selective_scan_fwd
from .reference import selective_scan_reference
from .time_split import pieces_for, selective_scan_time_split


def _check_param(name: str, t: object, shape: tuple, device: torch.device) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but u is on {device}")


def _check_inputs(u, dt, A, B, C, D, z, dt_bias) -> None:
    check_scan_tensor("u", u)
    if u.dim() != 3 or u.is_complex():
        raise ValueError(f"u must be a real [B, T, D] tensor, got shape {tuple(u.shape)} and dtype {u.dtype}")
    batch, steps, channels = u.shape
    _check_param("dt", dt, u.shape, u.device)
    _check_param("z", z, u.shape, u.device)
    if not isinstance(A, torch.Tensor) or A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"A must be [D, N] with D = {channels}, got {tuple(getattr(A, 'shape', ()))}")
    _check_param("A", A, A.shape, u.device)
    if not isinstance(B, torch.Tensor) or B.dim() != 4 or tuple(B.shape[:2]) != (batch, steps):
        raise ValueError(f"B must be [B, T, G, N] with B, T = {batch}, {steps}, got {tuple(getattr(B, 'shape', ()))}")
    groups, state_size = B.shape[2:]
    if state_size != A.shape[1] or channels % groups:
        raise ValueError(
            f"B [B, T, G, N] = {tuple(B.shape)} must have N = {A.shape[1]} (from A) and G dividing D = {channels}"
        )
    _check_param("B", B, B.shape, u.device)
    _check_param("C", C, B.shape, u.device)
    _check_param("D", D, (channels,), u.device)
    _check_param("dt_bias", dt_bias, (channels,), u.device)


def _time_pieces(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> int:
    """Time pieces for an inference call of the fused face (``time_split.py``); 1 keeps the single pass."""
    from .triton import launch_config

    batch, steps, channels = u.shape
    return pieces_for(batch, channels, steps, launch_config(channels, B.shape[2], A.shape[1], "pieces")["BD"])


def selective_scan(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mamba-1's selective scan, with an initial state, a final state and both directions.

    ``h_t = exp(dt_t A) * h_{t-1} + dt_t B_t u_t`` and ``y_t = C_t · h_t + D u_t``, times ``silu(z_t)`` if ``z``
    is given, where ``dt = softplus(dt + dt_bias)`` when ``dt_softplus`` (else ``dt + dt_bias``).
    With ``reverse=True`` the recurrence runs from ``t = T-1`` down to 0.

    Args:
        u, dt: ``[B, T, D]`` inputs and time steps (float32, bfloat16, float16 or float64).
        A: ``[D, N]`` real state matrix (diagonal per channel; negative for a stable scan).
        B, C: ``[B, T, G, N]``; group ``g`` serves channels ``g D/G .. (g+1) D/G - 1`` (G = 1 for Mamba/Vim,
            G = 4 for VMamba's four routes).
        D: ``[D]`` skip, z: ``[B, T, D]`` gate, dt_bias: ``[D]``.
        initial_state: ``[B, D, N]``; it receives a gradient like every other input.
        output_final_state: also return the last state (its gradient flows back too).

    Returns:
        ``y [B, T, D]`` in ``u``'s dtype and the final state ``[B, D, N]`` in float32 (float64 for float64
        inputs), or None.

    Faces: CUDA tensors run the fused Triton kernels (the state stays in registers; float64 inputs take the
    composite face), other devices the composite one (gates discretised to ``[B, T, D, N]`` and one
    ``linear_scan``, which needs ``N`` times the memory of ``u``). ``LRNN_SCAN_BACKEND`` forces one
    (``reference`` is the sequential loop). The fused kernels are correct on the GPU but still far from their
    memory floor at ``N = 16`` (benchmarks/NOTES.md). Without gradients, few sequences and channels over many steps
    are cut into time pieces scanned side by side (``time_split.py``).
    """
    _check_inputs(u, dt, A, B, C, D, z, dt_bias)
    batch, _, channels = u.shape
    if initial_state is not None:
        check_state("initial_state", initial_state, torch.Size((batch, channels, A.shape[1])), u.device)
    args = (u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state)
    backend = scan_backend(u.device)
    if backend == "reference":
        return selective_scan_reference(*args, output_final_state, reverse)
    if backend == "triton" and u.dtype != torch.float64:
        check_triton_runnable(u.device)
        tensors = [None if t is None else t.contiguous() for t in (u, dt, A, B, C, D, z, dt_bias)]
        h0 = None if initial_state is None else initial_state.to(torch.float32).contiguous()
        save_states = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (*tensors, h0))
        pieces = 1 if save_states else _time_pieces(u, A, B)
        if pieces > 1:
            y, final_state = selective_scan_time_split(*tensors, dt_softplus, h0, reverse, pieces)
        else:
            y, final_state, _ = selective_scan_fwd(*tensors, dt_softplus, h0, reverse, save_states)
    else:
        y, final_state = selective_scan_composite(*args, reverse)
    return y, (final_state if output_final_state else None)


def selective_scan_step(
    u_t: torch.Tensor,
    dt_t: torch.Tensor,
    A: torch.Tensor,
    B_t: torch.Tensor,
    C_t: torch.Tensor,
    D: torch.Tensor | None = None,
    z_t: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step of ``selective_scan``: ``u_t, dt_t, z_t [B, D]``, ``B_t, C_t [B, G, N]``, ``state [B, D, N]``
    (zeros when None). Returns ``(y_t [B, D]`` in ``u_t``'s dtype, the new state in the accumulation dtype)."""
    _check_inputs(
        u_t[:, None], dt_t[:, None], A, B_t[:, None], C_t[:, None], D, None if z_t is None else z_t[:, None], dt_bias
    )
    acc = accumulation_dtype(u_t.dtype)
    batch, channels = u_t.shape
    if state is None:
        state = u_t.new_zeros(batch, channels, A.shape[1], dtype=acc)
    check_state("state", state, torch.Size((batch, channels, A.shape[1])), u_t.device)
    delta = effective_dt(dt_t, dt_bias, dt_softplus, acc)
    drive = (delta * u_t.to(acc))[..., None] * per_channel(B_t.to(acc), channels)
    state = torch.exp(delta[..., None] * A.to(acc)) * state.to(acc) + drive
    return readout(state, C_t, u_t, D, z_t).to(u_t.dtype), state
