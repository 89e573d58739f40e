"""FLOPs of a backbone's forward pass, counted the way VMamba reports them (fvcore's convention, also Swin's).

* matmuls and convolutions: one FLOP per multiply-add (``torch.utils.flop_counter.FlopCounterMode`` counts two, so
  its count is halved; biases are not counted, in either);
* LayerNorm: 5 per element (4 without an affine transform), fvcore's estimate;
* each selective scan over ``[B, L, D]`` with ``N`` states: ``9 B L D N + B L D``, the formula of
  state-spaces/mamba#110 that VMamba's fvcore handle uses (discretising ``A`` and ``B``, updating and reading the
  state, and the ``D u`` skip). FlopCounterMode cannot see it (a custom op on CUDA, elementwise ops on the CPU),
  so it is counted from the shapes reaching each ``SS2D`` and ``Mamba`` module;
* ``SS2D``'s ``dt`` projection: ``B L E R`` a route, as fvcore counts its per-route einsum. SS2D runs both routes of
  a pair as one matmul against a block-diagonal weight, whose zero blocks FlopCounterMode counts as well
  (``2 B L E R`` a pair); those are taken off;
* elementwise ops (activations, gates, softplus), the cross-scan and the global average pool (37,632 for
  VMamba-T, under 1e-4 G) count nothing, as in fvcore.

Build the model on the ``meta`` device to count without computing: ``with torch.device("meta"): model = ...``.
"""

import torch
from torch.utils.flop_counter import FlopCounterMode

from ...core.mixers import Mamba
from .ss2d import ROUTES, SS2D


def selective_scan_flops(batch: int, steps: int, channels: int, state_size: int) -> int:
    """``9 B L D N + B L D`` for one selective scan of ``channels`` = D channels with N states each."""
    return 9 * batch * steps * channels * state_size + batch * steps * channels


def _layer_norm_flops(input_shape, normalized_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    numel = 1
    for size in input_shape:
        numel *= size
    return numel * (5 if weight_shape is not None else 4)


def _uncounted_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    """What FlopCounterMode misses in one ``SS2D`` (``x [B, H, W, C]``) or ``Mamba`` mixer (``x [B, L, C]``): its
    selective scans, less, in SS2D, the multiply-adds by the zero blocks of its ``dt`` projections."""
    if isinstance(module, SS2D):
        batch, steps = x.shape[0], x.shape[1] * x.shape[2]
        zero_blocks = ROUTES * batch * steps * module.d_inner * module.dt_rank
        return selective_scan_flops(batch, steps, ROUTES * module.d_inner, module.d_state) - zero_blocks
    directions = 2 if module.bidirectional else 1
    return directions * selective_scan_flops(x.shape[0], x.shape[1], module.d_inner, module.d_state)


def count_flops(model: torch.nn.Module, input_size: tuple[int, int, int] = (3, 224, 224), batch_size: int = 1) -> int:
    """FLOPs of ``model(x)`` for ``x [batch_size, *input_size]`` on the model's device, in the convention above."""
    device = next(model.parameters()).device
    uncounted = []
    hooks = [
        module.register_forward_pre_hook(lambda module, args: uncounted.append(_uncounted_flops(module, args[0])))
        for module in model.modules()
        if isinstance(module, SS2D | Mamba)
    ]
    layer_norm = torch.ops.aten.native_layer_norm
    counter = FlopCounterMode(display=False, custom_mapping={layer_norm: _layer_norm_flops})
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(batch_size, *input_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    counts = counter.get_flop_counts()["Global"]
    multiply_adds = sum(count for op, count in counts.items() if op is not layer_norm) // 2
    return multiply_adds + counts.get(layer_norm, 0) + sum(uncounted)
