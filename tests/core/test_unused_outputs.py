"""The scans' backwards get None, not zeros, for outputs nothing used: autograd would otherwise fill a zero
gradient for the tensors a forward saves for its backward (6.4 GB of selective_scan checkpoints at LION's size)
and for an unused final state."""

import pytest
import torch
from lrnn.core.scan import chunk_gla, linear_scan, selective_scan
from lrnn.core.scan.gla import op as gla_op
from lrnn.core.scan.gla import triton as gla_triton
from lrnn.core.scan.linear import op as linear_op
from lrnn.core.scan.linear import triton as linear_triton
from lrnn.core.scan.selective import op as selective_op

ON_GPU = torch.cuda.is_available()


def linear_case(device):
    a, x = torch.rand(2, 9, 8, device=device), torch.randn(2, 9, 8, device=device)
    return lambda a, x: linear_scan(a, x)[0], (a, x)


def selective_case(device):
    u, dt = torch.randn(2, 9, 4, device=device), torch.rand(2, 9, 4, device=device)
    A, B, C = (
        -torch.rand(4, 4, device=device),
        torch.randn(2, 9, 1, 4, device=device),
        torch.randn(2, 9, 1, 4, device=device),
    )
    return lambda u, dt, A, B, C: selective_scan(u, dt, A, B, C)[0], (u, dt, A, B, C)


def gla_case(device):
    q, k, v = (torch.randn(1, 9, 1, 16, device=device) for _ in range(3))
    g = -torch.rand(1, 9, 1, 16, device=device)
    return lambda q, k, v, g: chunk_gla(q, k, v, g)[0], (q, k, v, g)


@pytest.mark.parametrize(
    "case,module,backward,position",
    [
        (linear_case, linear_op, "linear_scan_bwd", 4),
        (selective_case, selective_op, "selective_scan_bwd", 11),
        (gla_case, gla_op, "chunk_gla_bwd", 7),
    ],
)
def test_unused_final_state_reaches_the_backward_as_none(monkeypatch, device, case, module, backward, position):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    if not ON_GPU:
        monkeypatch.setattr(linear_triton, "launch_config", lambda *args: {"BT": 16, "BD": 8, "num_warps": 1})
        tiles = gla_triton.launch_config
        monkeypatch.setattr(gla_triton, "launch_config", lambda *args: {**tiles(*args), **SMALL})
    seen, original = [], getattr(module, backward)
    monkeypatch.setattr(module, backward, lambda *a: seen.append(a[position]) or original(*a))
    fn, inputs = case(device)
    leaves = [t.requires_grad_() for t in inputs]
    fn(*leaves).sum().backward()
    assert seen == [None]
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in leaves)


SMALL = {"BT": 16, "BC": 16, "BK": 16, "BV": 16, "BV_O": 16, "num_warps": 1}
