"""The fused face of ``selective_scan`` as ``torch.library`` custom ops, so ``torch.compile`` traces through it
without graph breaks.

``lrnn::selective_scan_fwd`` and ``lrnn::selective_scan_bwd`` take contiguous inputs (shapes as in
``selective_scan``) and an initial state in float32 or None. Custom ops return tensors only: the forward always
returns the final state, and the checkpoints ``[B, n_tiles, D, N]`` when ``save_states`` (an empty tensor
otherwise); the backward returns an empty tensor in place of the gradient of an input that was None.
"""

import torch

from ....kernels.custom_ops import eager_custom_op


def _absent(like: torch.Tensor) -> torch.Tensor:
    """The placeholder returned where there is no tensor (an input was None, or nothing was saved)."""
    return like.new_empty((0,))


def _n_tiles(steps, channels: int, groups: int, state_size: int) -> int:
    from .triton import launch_config

    block_t = launch_config(channels, groups, state_size)["BT"]
    return (steps + block_t - 1) // block_t


@eager_custom_op("lrnn::selective_scan_fwd", mutates_args=())
def selective_scan_fwd(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    dt_bias: torch.Tensor | None,
    dt_softplus: bool,
    initial_state: torch.Tensor | None,
    reverse: bool,
    save_states: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``y [B, T, D]`` (``u``'s dtype), the final state ``[B, D, N]`` and the checkpoints (float32)."""
    from .triton import selective_scan_triton_fwd

    y, final_state, checkpoints = selective_scan_triton_fwd(
        u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, save_states
    )
    return y, final_state, (checkpoints if save_states else _absent(final_state))


@selective_scan_fwd.register_fake
def _selective_scan_fwd_fake(u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, save_states):
    batch, steps, channels = u.shape
    groups, state_size = B.shape[2:]
    final_state = u.new_empty((batch, channels, state_size), dtype=torch.float32)
    if not save_states:
        return torch.empty_like(u), final_state, _absent(final_state)
    checkpoints = u.new_empty(
        (batch, _n_tiles(steps, channels, int(groups), int(state_size)), channels, state_size), dtype=torch.float32
    )
    return torch.empty_like(u), final_state, checkpoints


@eager_custom_op("lrnn::selective_scan_pieces_fwd", mutates_args=())
def selective_scan_pieces_fwd(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    dt_bias: torch.Tensor | None,
    dt_softplus: bool,
    initial_states: torch.Tensor | None,
    reverse: bool,
    piece_len: int,
    first_pass: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass of the time split (``time_split.py``) over ``S = ceil(T / piece_len)`` pieces a sequence: ``y``
    (empty in the first pass), the states after each piece ``[B S, D, N]`` and the pieces' ``dt`` sums
    ``[B S, D]`` (empty in the second pass), both float32. Inference only: no autograd."""
    from .triton import selective_scan_triton_pieces

    y, final_states, dt_sums = selective_scan_triton_pieces(
        u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_states, reverse, piece_len, first_pass
    )
    return (_absent(u) if y is None else y), final_states, (_absent(final_states) if dt_sums is None else dt_sums)


@selective_scan_pieces_fwd.register_fake
def _selective_scan_pieces_fwd_fake(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_states, reverse, piece_len, first_pass
):
    batch, steps, channels = u.shape
    pieces = (steps + piece_len - 1) // piece_len
    final_states = u.new_empty((batch * pieces, channels, A.shape[1]), dtype=torch.float32)
    if first_pass:
        return _absent(u), final_states, u.new_empty((batch * pieces, channels), dtype=torch.float32)
    return torch.empty_like(u), final_states, _absent(final_states)


@eager_custom_op("lrnn::selective_scan_bwd", mutates_args=())
def selective_scan_bwd(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    dt_bias: torch.Tensor | None,
    dt_softplus: bool,
    checkpoints: torch.Tensor,
    grad_y: torch.Tensor,
    grad_final_state: torch.Tensor | None,
    reverse: bool,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
    torch.Tensor,
]:  # fmt: skip
    """Returns the gradients of ``(u, dt, A, B, C, D, z, dt_bias, initial_state)``, an empty tensor for each of
    ``D``, ``z``, ``dt_bias`` that was None."""
    from .triton import selective_scan_triton_bwd

    grads = selective_scan_triton_bwd(
        u, dt, A, B, C, D, z, dt_bias, dt_softplus, checkpoints, grad_y, grad_final_state, reverse
    )
    return tuple(_absent(u) if g is None else g for g in grads)


@selective_scan_bwd.register_fake
def _selective_scan_bwd_fake(
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, checkpoints, grad_y, grad_final_state, reverse
):
    batch, _, channels = u.shape
    optional = [_absent(u) if t is None else torch.empty_like(t) for t in (D, z, dt_bias)]
    d_initial_state = u.new_empty((batch, channels, A.shape[1]), dtype=torch.float32)
    return (*(torch.empty_like(t) for t in (u, dt, A, B, C)), *optional, d_initial_state)


def _setup_context(ctx, inputs, output):
    u, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, reverse, save_states = inputs
    ctx.save_for_backward(u, dt, A, B, C, D, z, dt_bias, output[2])
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)  # no zeros for the saved tensors' gradient (gigabytes at long T)
    ctx.dt_softplus, ctx.reverse, ctx.saved_states = dt_softplus, reverse, save_states
    ctx.has_initial_state = initial_state is not None


def _backward(ctx, grad_y, grad_final_state, _):
    if not ctx.saved_states:
        raise RuntimeError("selective_scan_fwd ran with save_states=False, so it has no backward")
    u, dt, A, B, C, D, z, dt_bias, checkpoints = ctx.saved_tensors
    grad_y = torch.zeros_like(u) if grad_y is None else grad_y.contiguous()
    grad_final_state = None if grad_final_state is None else grad_final_state.contiguous()
    du, ddt, dA, dB, dC, dD, dz, d_dt_bias, d_initial_state = selective_scan_bwd(
        u, dt, A, B, C, D, z, dt_bias, ctx.dt_softplus, checkpoints, grad_y, grad_final_state, ctx.reverse
    )
    return (
        du, ddt, dA, dB, dC,
        None if D is None else dD,
        None if z is None else dz,
        None if dt_bias is None else d_dt_bias,
        None,
        d_initial_state if ctx.has_initial_state else None,
        None,
        None,
    )  # fmt: skip


selective_scan_fwd.register_autograd(_backward, setup_context=_setup_context)
