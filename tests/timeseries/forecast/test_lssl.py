"""LSSL: HiPPO matrices, the GBT, Krylov powers, the causal FFT convolution, and conv mode = step mode = a float64
loop, for the layer and for the whole forecaster."""

import math

import pytest
import torch
from lrnn.timeseries.forecast import LSSL, LSSLForecaster, causal_conv, discretize, hippo, krylov

SQ3, SQ5, SQ15 = math.sqrt(3), math.sqrt(5), math.sqrt(15)


def test_hippo_legs_small_case_by_hand():
    A, B = hippo("legs", 3)
    expected = torch.tensor([[-1.0, 0, 0], [-SQ3, -2, 0], [-SQ5, -SQ15, -3]], dtype=torch.float64)
    torch.testing.assert_close(A, expected)
    torch.testing.assert_close(B, torch.tensor([1.0, SQ3, SQ5], dtype=torch.float64))


def test_hippo_legt_small_case_by_hand_and_as_the_hippo_paper_form():
    A, B = hippo("legt", 2)
    torch.testing.assert_close(A, torch.tensor([[-1.0, SQ3], [-SQ3, -3.0]], dtype=torch.float64))
    torch.testing.assert_close(B, torch.tensor([1.0, SQ3], dtype=torch.float64))
    # The HiPPO paper's LegT (theta = 1): A = -(2n+1)[(-1)^(n-k) if n >= k else 1], B = (2n+1)(-1)^n, is the same
    # system after the change of basis T = diag((-1)^n sqrt(2n+1)): A = T^{-1} A_paper T, B = T^{-1} B_paper.
    N = 5
    n = torch.arange(N, dtype=torch.float64)
    row, col = n[:, None], n[None, :]
    A_paper = -(2 * row + 1) * torch.where(row >= col, (-1.0) ** (row - col), torch.ones(()))
    B_paper = (2 * n + 1) * (-1.0) ** n
    T = torch.diag((-1.0) ** n * (2 * n + 1).sqrt())
    A, B = hippo("legt", N)
    torch.testing.assert_close(A, torch.linalg.solve(T, A_paper @ T))
    torch.testing.assert_close(B, torch.linalg.solve(T, B_paper))


def test_hippo_legs_eigenvalues_and_errors():
    A, _ = hippo("legs", 12)
    eig = torch.linalg.eigvals(A)
    torch.testing.assert_close(eig.real.sort().values, -torch.arange(12, 0, -1, dtype=torch.float64), atol=1e-8, rtol=0)
    with pytest.raises(ValueError, match="measure must be one of"):
        hippo("lagt", 4)
    with pytest.raises(ValueError, match="N must be a positive int"):
        hippo("legs", 0)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_gbt_matches_euler_bilinear_and_backward_euler(alpha):
    A, B = hippo("legs", 4)
    dt = torch.tensor([0.01, 0.3], dtype=torch.float64)
    A_bar, B_bar = discretize(A, B, dt, alpha)
    eye = torch.eye(4, dtype=torch.float64)
    for h in range(2):
        step = dt[h] * A
        if alpha == 0.0:  # forward Euler: x_k = (I + ΔA) x_{k-1} + ΔB u_k
            expected_A, expected_B = eye + step, dt[h] * B
        elif alpha == 1.0:  # backward Euler
            expected_A, expected_B = torch.inverse(eye - step), dt[h] * torch.inverse(eye - step) @ B
        else:  # bilinear (Tustin)
            inv = torch.inverse(eye - step / 2)
            expected_A, expected_B = inv @ (eye + step / 2), dt[h] * inv @ B
        torch.testing.assert_close(A_bar[h], expected_A)
        torch.testing.assert_close(B_bar[h], expected_B)


@pytest.mark.parametrize("length", [1, 2, 7, 64, 100])
def test_krylov_by_squaring_equals_explicit_powers(length):
    torch.manual_seed(0)
    A = 0.3 * torch.randn(3, 5, 5, dtype=torch.float64)
    b = torch.randn(3, 5, dtype=torch.float64)
    K = krylov(A, b, length)
    assert K.shape == (3, 5, length)
    for k in range(length):
        torch.testing.assert_close(K[..., k], (torch.linalg.matrix_power(A, k) @ b.unsqueeze(-1)).squeeze(-1))


def test_causal_fft_conv_equals_a_direct_sum():
    torch.manual_seed(0)
    u = torch.randn(2, 30, 3, dtype=torch.float64)
    kernel = torch.randn(3, 2, 30, dtype=torch.float64)
    y = causal_conv(u, kernel)
    expected = torch.zeros(2, 30, 3, 2, dtype=torch.float64)
    for t in range(30):
        for s in range(t + 1):
            expected[:, t] += kernel[:, :, t - s] * u[:, s, :, None]
    torch.testing.assert_close(y, expected)


def reference_ssm(ssm: LSSL, u: torch.Tensor) -> torch.Tensor:
    """The state-space model of ``ssm`` run step by step in float64 with explicit inverses (independent of
    ``discretize``, ``krylov`` and the FFT): ``u [B, L, H] -> y [B, L, H, M]``."""
    batch, length, features = u.shape
    N, u = ssm.state_size, u.double()
    A = ssm.A.double().expand(features, N, N)
    B = ssm.B.double().expand(features, N).unsqueeze(-1)
    C, D, dt = ssm.C.double(), ssm.D.double(), ssm.log_dt.double().exp()[:, None, None]
    eye = torch.eye(N, dtype=torch.float64)
    inv = torch.inverse(eye - ssm.alpha * dt * A)
    A_bar, B_bar = inv @ (eye + (1 - ssm.alpha) * dt * A), (dt * inv @ B).squeeze(-1)  # [H, N, N], [H, N]
    x = torch.zeros(batch, features, N, dtype=torch.float64)
    y = []
    for t in range(length):
        x = (A_bar @ x.unsqueeze(-1)).squeeze(-1) + B_bar * u[:, t, :, None]
        y.append((C @ x.unsqueeze(-1)).squeeze(-1) + D * u[:, t, :, None])
    return torch.stack(y, dim=1)


@pytest.mark.parametrize(
    "measure, learn, alpha", [("legs", 0, 0.5), ("legs", 1, 0.5), ("legt", 2, 0.5), ("legs", 2, 0.0), ("legt", 1, 1.0)]
)
def test_lssl_conv_mode_equals_step_mode_equals_float64_loop(measure, learn, alpha):
    torch.manual_seed(0)
    ssm = LSSL(d_model=3, state_size=16, channels=2, measure=measure, learn=learn, alpha=alpha)
    if learn:  # move A, B away from HiPPO so that the test sees which matrices are used
        with torch.no_grad():
            ssm.A.add_(0.1 * torch.randn_like(ssm.A))
            ssm.B.add_(0.1 * torch.randn_like(ssm.B))
    u = torch.randn(2, 200, 3)
    expected = reference_ssm(ssm, u)
    scale = expected.abs().max()

    conv = ssm(u)
    state, system, steps = ssm.initial_state(2), ssm.discretized(), []
    for t in range(u.shape[1]):
        y_t, state = ssm.step(u[:, t], state, system)
        steps.append(y_t)
    step = torch.stack(steps, dim=1)
    assert conv.shape == step.shape == (2, 200, 3, 2)
    # float32: both modes within float32 rounding of the exact output, and of each other
    assert (conv.double() - expected).abs().max() / scale < 2e-6
    assert (step.double() - expected).abs().max() / scale < 2e-6
    assert (conv - step).abs().max() / scale < 2e-6
    # float64: the convolution mode is the recurrence
    assert (ssm.double()(u.double()) - expected).abs().max() / scale < 1e-12


def test_learn_modes_own_the_right_parameters_and_groups():
    fixed, shared, separate = (LSSL(4, state_size=8, learn=mode) for mode in (0, 1, 2))
    assert "A" not in dict(fixed.named_parameters()) and "A" in dict(fixed.named_buffers())
    assert shared.A.shape == (8, 8) and shared.B.shape == (8,)
    assert separate.A.shape == (4, 8, 8) and separate.B.shape == (4, 8)
    assert fixed.param_groups() == {"timescale": [fixed.log_dt], "transition": []}
    assert shared.param_groups()["transition"] == [shared.A, shared.B]
    no_dt = LSSL(4, state_size=8, train_dt=False)
    assert no_dt.param_groups()["timescale"] == [] and "log_dt" in dict(no_dt.named_buffers())
    steps = LSSL(1000, state_size=4, dt_min=1e-3, dt_max=1e-1).log_dt.exp()
    assert 1e-3 <= steps.min() and steps.max() <= 1e-1
    low = (steps < 1e-2).float().mean()  # log-uniform: half the steps below the geometric middle
    assert 0.4 < low < 0.6
    loss = separate(torch.randn(2, 20, 4)).square().sum()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (separate.A, separate.B, separate.log_dt))


def test_lssl_arguments_are_checked():
    with pytest.raises(ValueError, match="learn must be one of"):
        LSSL(4, learn=3)
    with pytest.raises(ValueError, match="alpha must be in"):
        LSSL(4, alpha=1.5)
    with pytest.raises(ValueError, match="dt_min <= dt_max"):
        LSSL(4, dt_min=0.1, dt_max=0.01)


def test_forecaster_conv_mode_equals_step_mode_and_float64():
    torch.manual_seed(0)
    model = LSSLForecaster(48, 24, n_channels=2, n_time_features=4, d_model=8, n_layers=2, state_size=8, dropout=0.1)
    model.eval()
    x, x_mark, y_mark = torch.randn(3, 48, 2), torch.rand(3, 48, 4) - 0.5, torch.rand(3, 24, 4) - 0.5
    conv = model(x, x_mark, y_mark)
    step = model.forecast_recurrent(x, x_mark, y_mark)
    exact = model.double()(x.double(), x_mark.double(), y_mark.double())
    assert conv.shape == (3, 24, 2)
    scale = exact.abs().max()
    assert (conv.double() - exact).abs().max() / scale < 1e-5
    assert (step.double() - exact).abs().max() / scale < 1e-5
    assert (model.forecast_recurrent(x.double(), x_mark.double(), y_mark.double()) - exact).abs().max() < 1e-10
    with pytest.raises(ValueError, match=r"x must have shape \[3, 48, 2\]"):
        model(x[:, :40].double(), x_mark.double(), y_mark.double())


def test_forecaster_is_causal_in_its_input_and_groups_its_ssm_parameters():
    torch.manual_seed(0)
    model = LSSLForecaster(32, 8, n_channels=1, n_time_features=4, d_model=8, n_layers=2, state_size=8, norm=False)
    model.eval()
    x, x_mark, y_mark = torch.randn(1, 32, 1), torch.zeros(1, 32, 4), torch.zeros(1, 8, 4)
    base = model(x, x_mark, y_mark)
    later = x.clone()
    later[0, -1] += 1.0
    assert not torch.allclose(model(later, x_mark, y_mark), base)  # the forecast reads the last input step
    groups = model.param_groups()
    assert len(groups["timescale"]) == 2 and len(groups["transition"]) == 4
