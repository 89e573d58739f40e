"""ConvS5's state-space model: HiPPO-DPLR initialisation, ZOH, the scan against a float64 loop, step mode."""

import math

import pytest
import torch
import torch.nn.functional as F
from lrnn.vision.video import ConvS5SSM, dplr_hippo


def normal_hippo_legs(n: int) -> torch.Tensor:
    """HiPPO-LegS plus its rank-one term, written out entry by entry: the matrix S5 diagonalises."""
    s = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for k in range(n):
            legs = -math.sqrt((2 * i + 1) * (2 * k + 1)) if i > k else (-(i + 1) if i == k else 0.0)
            s[i, k] = legs + math.sqrt((i + 0.5) * (k + 0.5))
    return s


def test_dplr_hippo_keeps_one_of_each_conjugate_pair_of_the_normal_hippo_spectrum():
    n = 12
    lam, v = dplr_hippo(n)
    assert lam.shape == (n // 2,) and v.shape == (n, n // 2)
    s = normal_hippo_legs(n)
    full = torch.linalg.eigvals(s)
    kept_and_conjugates = torch.cat([lam, lam.conj()])
    key = lambda z: z.imag  # noqa: E731
    torch.testing.assert_close(
        sorted(kept_and_conjugates.tolist(), key=key), sorted(full.tolist(), key=key), atol=1e-9, rtol=0
    )
    torch.testing.assert_close(lam.real, torch.full((n // 2,), -0.5, dtype=torch.float64))
    assert torch.all(lam.imag < 0)
    torch.testing.assert_close(s.to(torch.complex128) @ v, v * lam, atol=1e-9, rtol=0)
    torch.testing.assert_close(v.conj().T @ v, torch.eye(n // 2, dtype=torch.complex128), atol=1e-12, rtol=0)
    # The half and 2 Re(.) represent the whole real space: 2 Re(V V^*) = I.
    torch.testing.assert_close(2 * (v @ v.conj().T).real, torch.eye(n, dtype=torch.float64), atol=1e-12, rtol=0)


def test_dplr_hippo_blocks_repeat_the_block_spectrum_on_the_diagonal():
    lam, v = dplr_hippo(16, blocks=2)
    lam_block, v_block = dplr_hippo(8)
    torch.testing.assert_close(lam, lam_block.repeat(2))
    torch.testing.assert_close(v, torch.block_diag(v_block, v_block))
    for size, blocks in ((7, 1), (12, 4), (0, 1)):
        with pytest.raises(ValueError, match="state_size must be a positive multiple"):
            dplr_hippo(size, blocks)


def test_initialisation_keeps_half_the_states_stable_and_steps_in_range():
    torch.manual_seed(0)
    ssm = ConvS5SSM(d_model=16, ssm_size=256, b_kernel_size=3, c_kernel_size=3)
    assert ssm.state_size == 128 and ssm.lambda_re.shape == (128,) and ssm.B.shape == (128, 16, 3, 3, 2)
    assert ssm.C.shape == (16, 128, 3, 3, 2)
    assert torch.all(ssm.eigenvalues().real < 0)
    lam_bar, _ = ssm.discretize()
    assert torch.all(lam_bar.abs() < 1)
    steps = ssm.log_step.exp()
    assert steps.min() >= 1e-3 and steps.max() <= 1e-1
    assert steps.min() < 2e-3 and steps.max() > 5e-2  # log-uniform over the whole range, not one corner
    # B = V^* B_real with B_real He-normal (variance 2 / fan_in): 2 Re(V B) recovers the real kernel.
    _, v = dplr_hippo(256)
    b = torch.view_as_complex(ssm.B.detach().double()).reshape(128, -1).to(torch.complex128)
    b_real = 2 * (v @ b).real
    fan_in = 16 * 9
    assert abs(b_real.std().item() / math.sqrt(2 / fan_in) - 1) < 0.05
    assert b_real.abs().max() <= 2 * math.sqrt(2 / fan_in) / 0.8796 + 1e-6


def test_clip_eigs_keeps_the_real_part_negative():
    ssm = ConvS5SSM(d_model=4, ssm_size=8, clip_eigs=True)
    unclipped = ConvS5SSM(d_model=4, ssm_size=8, clip_eigs=False)
    with torch.no_grad():
        ssm.lambda_re.fill_(0.3)
        unclipped.lambda_re.fill_(0.3)
    assert torch.all(ssm.eigenvalues().real == -1e-4) and torch.all(ssm.discretize()[0].abs() < 1)
    assert torch.all(unclipped.eigenvalues().real == 0.3) and torch.all(unclipped.discretize()[0].abs() > 1)


def float64_loop(ssm: ConvS5SSM, u: torch.Tensor, x0: torch.Tensor, params: dict) -> tuple:
    """The ConvS5 recurrence step by step in complex128, from the equations (not the module's helpers)."""
    lam = torch.complex(params["lambda_re"].clamp(max=-1e-4), params["lambda_im"])
    lam_bar = torch.exp(lam * params["log_step"].exp())
    b_bar = ((lam_bar - 1) / lam)[:, None, None, None] * torch.view_as_complex(params["B"])
    c = torch.view_as_complex(params["C"])
    x, ys = x0, []
    for t in range(u.shape[1]):
        x = lam_bar[:, None, None] * x + F.conv2d(u[:, t].to(torch.complex128), b_bar, padding=1)
        ys.append(2 * F.conv2d(x, c, padding=1).real)
    return torch.stack(ys, dim=1), x


def test_parallel_scan_matches_a_float64_loop_with_gradients():
    torch.manual_seed(1)
    ssm = ConvS5SSM(d_model=3, ssm_size=8)
    u = torch.randn(2, 7, 3, 5, 6, requires_grad=True)
    x0 = (0.5 * torch.randn(2, 4, 5, 6, dtype=torch.complex64)).requires_grad_()
    w_y, w_x = torch.randn(2, 7, 3, 5, 6), torch.randn(2, 4, 5, 6, dtype=torch.complex64)

    y, x_last = ssm(u, x0)
    loss = (y * w_y).sum() + (x_last * w_x.conj()).real.sum()
    leaves = [u, x0, *ssm.parameters()]
    grads = torch.autograd.grad(loss, leaves)

    params = {name: p.detach().double().requires_grad_() for name, p in ssm.named_parameters()}
    u64 = u.detach().double().requires_grad_()
    x064 = x0.detach().to(torch.complex128).requires_grad_()
    y64, x_last64 = float64_loop(ssm, u64, x064, params)
    loss64 = (y64 * w_y.double()).sum() + (x_last64 * w_x.to(torch.complex128).conj()).real.sum()
    grads64 = torch.autograd.grad(loss64, [u64, x064, *params.values()])

    torch.testing.assert_close(y.double(), y64, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_last.to(torch.complex128), x_last64, atol=1e-5, rtol=1e-5)
    names = ["u", "x0", *params]
    for name, got, want in zip(names, grads, grads64, strict=True):
        scale = want.abs().max().item()
        assert (got.to(want.dtype) - want).abs().max().item() <= 1e-5 * max(scale, 1), name


def test_step_mode_matches_the_parallel_scan():
    torch.manual_seed(2)
    ssm = ConvS5SSM(d_model=4, ssm_size=16)
    u = torch.randn(2, 9, 4, 6, 6)
    x = 0.3 * torch.randn(2, 8, 6, 6, dtype=torch.complex64)
    with torch.no_grad():
        y, x_last = ssm(u, x)
        steps = []
        for t in range(u.shape[1]):
            y_t, x = ssm.step(u[:, t], x)
            steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, dim=1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x, x_last, atol=1e-6, rtol=1e-5)


def test_fixed_step_weights_are_derived_once_and_keep_gradients(monkeypatch):
    """Inside ``fixed_step_weights`` the steps give what they give outside it, the discretisation runs once (on
    entry) instead of every step, and a loss over the steps still reaches every parameter with the same gradient."""
    torch.manual_seed(3)
    ssm = ConvS5SSM(d_model=4, ssm_size=16)
    u = torch.randn(2, 5, 4, 6, 6)
    calls = []
    discretize = ssm.discretize
    monkeypatch.setattr(ssm, "discretize", lambda: calls.append(1) or discretize())

    def rollout():
        x, outputs = None, []
        for t in range(u.shape[1]):
            y_t, x = ssm.step(u[:, t], x)
            outputs.append(y_t)
        loss = torch.stack(outputs).square().sum()
        return loss, torch.autograd.grad(loss, list(ssm.parameters()))

    loss, grads = rollout()
    assert len(calls) == u.shape[1]
    calls.clear()
    with ssm.fixed_step_weights():
        fixed_loss, fixed_grads = rollout()
    assert len(calls) == 1 and ssm._fixed_weights is None
    torch.testing.assert_close(fixed_loss, loss)
    for grad, fixed_grad in zip(grads, fixed_grads, strict=True):
        torch.testing.assert_close(fixed_grad, grad)


def test_wrong_inputs_and_states_raise_clear_errors():
    ssm = ConvS5SSM(d_model=4, ssm_size=8)
    with pytest.raises(ValueError, match=r"U = d_model = 4, got \(2, 3, 5, 6, 6\)"):
        ssm(torch.randn(2, 3, 5, 6, 6))
    with pytest.raises(ValueError, match=r"\[B, U, h, w\]"):
        ssm.step(torch.randn(2, 3, 4, 6, 6))
    with pytest.raises(TypeError, match="complex64"):
        ssm(torch.randn(2, 3, 4, 6, 6), torch.zeros(2, 4, 6, 6))
    with pytest.raises(ValueError, match=r"\(2, 4, 6, 6\)"):
        ssm(torch.randn(2, 3, 4, 6, 6), torch.zeros(2, 4, 5, 6, dtype=torch.complex64))
    with pytest.raises(ValueError, match="b_kernel_size must be a positive odd int"):
        ConvS5SSM(d_model=4, ssm_size=8, b_kernel_size=2)
    with pytest.raises(ValueError, match="dt_min <= dt_max"):
        ConvS5SSM(d_model=4, ssm_size=8, dt_min=0.1, dt_max=0.01)
    with pytest.raises(ValueError, match="state_size must be a positive multiple"):
        ConvS5SSM(d_model=4, ssm_size=7)
