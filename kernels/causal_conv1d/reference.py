"""The definition of ``causal_conv1d``: ``F.conv1d`` over the sequence padded on the left with the state (on the
right with zeros, and the taps reversed, for the anti-causal ``reverse=True``).

This is the oracle for the Triton face and the path every device takes by default.
"""

import torch
import torch.nn.functional as F


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Arithmetic dtype: float64 for float64 inputs, float32 for everything narrower."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def padded_input(x: torch.Tensor, initial_state: torch.Tensor | None, width: int) -> torch.Tensor:
    """``[state, x]`` along time, channels first: ``[B, D, W-1+T]`` in ``x``'s dtype (zeros for a missing state)."""
    xt = x.transpose(1, 2)
    if initial_state is None:
        return F.pad(xt, (width - 1, 0))
    return torch.cat([initial_state.to(x.dtype), xt], dim=-1)


def check_reverse(reverse: bool, initial_state: torch.Tensor | None, output_final_state: bool) -> None:
    """``reverse=True`` reads the future, so it has no state to start from or to carry on."""
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse must be a bool, got {type(reverse).__name__}")
    if reverse and (initial_state is not None or output_final_state):
        raise ValueError(
            "reverse=True takes no initial_state and no output_final_state (the anti-causal conv runs over whole "
            "sequences, with zeros past the end)"
        )


def final_conv_state(x: torch.Tensor, initial_state: torch.Tensor | None, width: int) -> torch.Tensor:
    """The last ``W-1`` inputs of ``[state, x]``, oldest first: ``[B, D, W-1]`` in ``x``'s dtype (differentiable)."""
    keep = width - 1
    tail = x[:, max(x.shape[1] - keep, 0) :]
    padded = padded_input(tail, initial_state, width)
    return padded[..., padded.shape[-1] - keep :]


def activate(s: torch.Tensor, activation: str | None) -> torch.Tensor:
    return F.silu(s) if activation == "silu" else s


def causal_conv1d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y_t = act(bias + sum_k weight[:, k] * x_{t-W+1+k})`` with ``x_{-W+1..-1}`` from ``initial_state``; with
    ``reverse``, ``y_t = act(bias + sum_k weight[:, k] * x_{t+W-1-k})`` with zeros past ``T-1`` (no states).

    Shapes as in ``causal_conv1d``; computed in float32 (float64 for float64 inputs), differentiable by autograd.
    """
    check_reverse(reverse, initial_state, output_final_state)
    width = weight.shape[1]
    acc = accumulation_dtype(x.dtype)
    if reverse:
        padded, taps = F.pad(x.transpose(1, 2), (0, width - 1)).to(acc), weight.to(acc).flip(-1)
    else:
        padded, taps = padded_input(x, initial_state, width).to(acc), weight.to(acc)
    s = F.conv1d(padded, taps[:, None, :], None if bias is None else bias.to(acc), groups=weight.shape[0])
    y = activate(s, activation).transpose(1, 2).to(x.dtype)
    return y, (final_conv_state(x, initial_state, width) if output_final_state else None)


def causal_conv1d_step_reference(
    x_t: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: ``window = [state, x_t]`` ``[B, D, W]``; ``y_t = act(bias + sum_k weight[:, k] window[..., k])``,
    the next state is ``window[..., 1:]``."""
    acc = accumulation_dtype(x_t.dtype)
    window = torch.cat([state.to(x_t.dtype), x_t[..., None]], dim=-1)
    s = (window.to(acc) * weight.to(acc)).sum(-1)
    if bias is not None:
        s = s + bias.to(acc)
    return activate(s, activation).to(x_t.dtype), window[..., 1:]
