"""eager_custom_op: the body runs directly in eager calls nothing traces or records, the op everywhere else."""

import torch
from lrnn.kernels.custom_ops import EagerCustomOp, needs_the_op
from torch._subclasses.fake_tensor import FakeTensorMode


def _scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return x * factor


SCALE = EagerCustomOp("lrnn_test::scale", _scale)
SCALE.register_fake(lambda x, factor: torch.empty_like(x))
SCALE.register_autograd(
    lambda ctx, grad: (grad * ctx.factor, None),
    setup_context=lambda ctx, inputs, output: setattr(ctx, "factor", inputs[1]),
)


def _route(monkeypatch, *args) -> list[str]:
    """Which of the op and the body ``SCALE(*args)`` called."""
    calls = []
    monkeypatch.setattr(SCALE, "op", lambda *a: calls.append("op") or _scale(*a))
    monkeypatch.setattr(SCALE, "body", lambda *a: calls.append("body") or _scale(*a))
    SCALE(*args)
    return calls


def test_eager_calls_without_gradients_take_the_body(monkeypatch):
    x = torch.randn(3)
    assert _route(monkeypatch, x, 2.0) == ["body"]
    with torch.no_grad():
        assert _route(monkeypatch, x.requires_grad_(), 2.0) == ["body"]
    assert _route(monkeypatch, torch.nn.Parameter(torch.randn(3), requires_grad=False), 2.0) == ["body"]


def test_recorded_traced_and_fake_calls_take_the_op(monkeypatch):
    assert _route(monkeypatch, torch.randn(3, requires_grad=True), 2.0) == ["op"]
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(torch.randn(3))
        assert needs_the_op((fake, 2.0))
    seen = []

    def traced(x):
        seen.append(needs_the_op((x,)))
        return x + 1

    torch.compile(traced, backend="eager")(torch.randn(3))
    assert seen == [True]


def test_both_paths_give_the_same_values_and_gradients():
    x = torch.randn(5, requires_grad=True)
    (grad,) = torch.autograd.grad(SCALE(x, 3.0).sum(), x)
    torch.testing.assert_close(grad, torch.full((5,), 3.0))
    with torch.no_grad():
        torch.testing.assert_close(SCALE(x, 3.0), x * 3.0)
