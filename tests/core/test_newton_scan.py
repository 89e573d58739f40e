"""``newton_scan`` against its sequential loop, in float64: trajectories, gradients, forcing, Jacobians, errors."""

import pytest
import torch
from lrnn.core.scan.newton import affine_scan, newton_scan, newton_scan_reference

F64 = torch.float64
BATCH, STEPS, INPUTS = 4, 200, 3
SCANS = ("doubling", "chunked")


class Plrnn:
    """``z' = A ⊙ z + W relu(z) + h + C x``, with its Jacobian ``diag(A) + W diag(z > 0)``."""

    def __init__(self, width: int, seed: int = 0, dtype=F64):
        gen = torch.Generator().manual_seed(seed)
        self.A = (0.5 + 0.4 * torch.rand(width, generator=gen, dtype=F64)).to(dtype).requires_grad_()
        self.W = (0.3 * torch.randn(width, width, generator=gen, dtype=F64) / width**0.5).to(dtype).requires_grad_()
        self.h = (0.2 * torch.randn(width, generator=gen, dtype=F64)).to(dtype).requires_grad_()
        self.C = torch.randn(width, INPUTS, generator=gen, dtype=F64).to(dtype).requires_grad_()

    def params(self):
        return [self.A, self.W, self.h, self.C]

    def __call__(self, z, x):
        return self.A * z + torch.relu(z) @ self.W.T + self.h + x @ self.C.T

    def jacobian(self, z, x):
        return torch.diag(self.A) + self.W * (z > 0).to(z.dtype).unsqueeze(1)


class TanhRnn:
    """``z' = tanh(W z + U x + b)``, smooth."""

    def __init__(self, width: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.W = (0.9 * torch.randn(width, width, generator=gen, dtype=F64) / width**0.5).requires_grad_()
        self.U = torch.randn(width, INPUTS, generator=gen, dtype=F64).requires_grad_()
        self.b = (0.1 * torch.randn(width, generator=gen, dtype=F64)).requires_grad_()

    def params(self):
        return [self.W, self.U, self.b]

    def __call__(self, z, x):
        return torch.tanh(z @ self.W.T + x @ self.U.T + self.b)


def inputs(width: int, seed: int = 1, steps: int = STEPS):
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(BATCH, width, generator=gen, dtype=F64).requires_grad_()
    x = torch.randn(BATCH, steps, INPUTS, generator=gen, dtype=F64).requires_grad_()
    return z0, x


def max_error(a, b) -> float:
    return (a - b).abs().max().item()


def gradients(z, leaves, seed: int = 2):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(z.shape, generator=gen, dtype=z.dtype)
    return torch.autograd.grad((z * weight).sum(), leaves)


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("width", [5, 20])
def test_plrnn_trajectory_and_gradients_match_the_loop(width, scan):
    model = Plrnn(width)
    z0, x = inputs(width)
    z, info = newton_scan(model, z0, x, scan=scan)
    expected, _ = newton_scan_reference(model, z0, x)
    assert max_error(z, expected) < 1e-6
    assert info.converged and info.iterations <= 20 and info.residual < 1e-10
    assert torch.equal(z > 0, expected > 0), "the ReLU pattern of the solution is the loop's"
    leaves = [z0, x, *model.params()]
    for got, want in zip(gradients(z, leaves), gradients(expected, leaves), strict=True):
        assert max_error(got, want) < 1e-6 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("scan", SCANS)
def test_tanh_rnn_trajectory_and_gradients_match_the_loop(scan):
    model = TanhRnn(12)
    z0, x = inputs(12)
    z, info = newton_scan(model, z0, x, scan=scan)
    expected, _ = newton_scan_reference(model, z0, x)
    assert max_error(z, expected) < 1e-6
    assert info.converged and info.iterations <= 20
    leaves = [z0, x, *model.params()]
    for got, want in zip(gradients(z, leaves), gradients(expected, leaves), strict=True):
        assert max_error(got, want) < 1e-6 * max(1.0, want.abs().max().item())


def test_teacher_forced_map_matches_the_loop_with_both_jacobians():
    """The forced map ``(1 - α) F(z) + α ẑ_t`` with ``x = (s, ẑ)``, and its Jacobian ``(1 - α) J``."""
    model, alpha = Plrnn(10, seed=3), 0.3
    z0, x = inputs(10, seed=4)
    targets = torch.randn(BATCH, STEPS, 10, generator=torch.Generator().manual_seed(5), dtype=F64)

    def forced(z, inp):
        s, target = inp
        return (1 - alpha) * model(z, s) + alpha * target

    def forced_jacobian(z, inp):
        return (1 - alpha) * model.jacobian(z, inp[0])

    expected, _ = newton_scan_reference(forced, z0, (x, targets))
    leaves = [z0, x, *model.params()]
    want = gradients(expected, leaves)
    for jacobian in (None, forced_jacobian):
        z, info = newton_scan(forced, z0, (x, targets), jacobian=jacobian)
        assert max_error(z, expected) < 1e-6 and info.converged
        for got, ref in zip(gradients(z, leaves), want, strict=True):
            assert max_error(got, ref) < 1e-6 * max(1.0, ref.abs().max().item())


def test_user_jacobian_equals_the_autograd_jacobian():
    model = Plrnn(8, seed=3)
    z0, x = inputs(8, seed=7)
    by_autograd, info_autograd = newton_scan(model, z0, x)
    by_hand, info_hand = newton_scan(model, z0, x, jacobian=model.jacobian)
    assert max_error(by_hand, by_autograd) < 1e-12
    assert info_hand.iterations == info_autograd.iterations
    leaves = [z0, *model.params()]
    for got, want in zip(gradients(by_hand, leaves), gradients(by_autograd, leaves), strict=True):
        assert max_error(got, want) < 1e-10


@pytest.mark.parametrize("steps", [1, 2, 7, 64, 65, 130])
def test_affine_scan_faces_match_the_loop(steps):
    gen = torch.Generator().manual_seed(steps)
    jac = 0.5 * torch.randn(2, steps, 4, 4, generator=gen, dtype=F64)
    b = torch.randn(2, steps, 4, generator=gen, dtype=F64)
    h0 = torch.randn(2, 4, generator=gen, dtype=F64)
    h, expected = h0, []
    for t in range(steps):
        h = jac[:, t] @ h.unsqueeze(-1)
        h = h.squeeze(-1) + b[:, t]
        expected.append(h)
    expected = torch.stack(expected, 1)
    for scan in SCANS:
        assert max_error(affine_scan(jac, b, h0, scan), expected) < 1e-12


def test_without_inputs_a_good_guess_and_float32():
    model = TanhRnn(6, seed=8)
    z0, _ = inputs(6, seed=9)
    autonomous = lambda z, x: model(z, torch.zeros(z.shape[0], INPUTS, dtype=z.dtype))  # noqa: E731
    expected, _ = newton_scan_reference(autonomous, z0, steps=50)
    z, info = newton_scan(autonomous, z0, steps=50)
    assert max_error(z, expected) < 1e-6
    _, warm = newton_scan(autonomous, z0, steps=50, initial_guess=expected.detach())
    assert warm.iterations == 1 and warm.converged
    single = Plrnn(6, seed=10, dtype=torch.float32)
    z0_32, x_32 = (t.detach().float() for t in inputs(6, seed=11, steps=100))
    z32, info32 = newton_scan(single, z0_32, x_32)
    assert z32.dtype == torch.float32 and info32.converged
    assert max_error(z32, newton_scan_reference(single, z0_32, x_32)[0]) < 1e-4


def test_hitting_the_cap_warns():
    model = Plrnn(5)
    z0, x = inputs(5)
    with pytest.warns(RuntimeWarning, match="max_iters = 1"):
        _, info = newton_scan(model, z0, x, max_iters=1)
    assert not info.converged and info.iterations == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"f": 3}, TypeError, "f must be callable"),
        ({"z0": torch.zeros(BATCH, 5, 1, dtype=F64)}, ValueError, r"z0 must be \[batch, M\]"),
        ({"z0": torch.zeros(BATCH, 5, dtype=torch.long)}, TypeError, "real floating-point"),
        ({"x": torch.zeros(BATCH + 1, STEPS, INPUTS, dtype=F64)}, ValueError, r"batch = 4"),
        ({"x": torch.zeros(BATCH, dtype=F64)}, ValueError, r"\[batch, T, \.\.\.\]"),
        ({"x": None}, ValueError, "steps is required"),
        ({"steps": STEPS + 1}, ValueError, "disagrees"),
        ({"x": (torch.zeros(BATCH, 3, 1), torch.zeros(BATCH, 4, 1))}, ValueError, "share T"),
        ({"f": lambda z, x: z[:, :2]}, ValueError, r"must return z's shape"),
        ({"jacobian": lambda z, x: torch.zeros(2, 2, dtype=F64)}, ValueError, r"\[N, M, M\]"),
        ({"max_iters": 0}, ValueError, "max_iters"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"scan": "blelloch"}, ValueError, "scan must be one of"),
        ({"initial_guess": torch.zeros(BATCH, STEPS, 4, dtype=F64)}, ValueError, "initial_guess"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    model = Plrnn(5)
    z0, x = inputs(5)
    arguments = {"f": model, "z0": z0, "x": x, **kwargs}
    f, start, inp = arguments.pop("f"), arguments.pop("z0"), arguments.pop("x")
    with pytest.raises(error, match=match):
        newton_scan(f, start, inp, **arguments)
