"""The Mamba mixer: its equations against a float64 loop, step and pieces against the whole, the parameter count,
the initialisation, the bidirectional variant, gradients and errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from lrnn.core.mixers import build_mixer
from lrnn.core.mixers.mamba import Mamba


def make(d_model: int = 8, seed: int = 0, **kwargs) -> Mamba:
    torch.manual_seed(seed)
    return Mamba(d_model, **kwargs)


def oracle(mixer: Mamba, x: torch.Tensor) -> torch.Tensor:
    """mamba-ssm's slow path in float64, one step at a time, from the raw parameters (forward direction)."""
    p = {name: value.detach().double() for name, value in mixer.named_parameters()}
    E, N, R, W = mixer.d_inner, mixer.d_state, mixer.dt_rank, mixer.d_conv
    xs, z = (x.double() @ p["in_proj.weight"].T).split(E, dim=-1)
    padded = F.pad(xs.transpose(1, 2), (W - 1, 0))
    xs = F.silu(F.conv1d(padded, p["conv1d.weight"], p["conv1d.bias"], groups=E)).transpose(1, 2)
    dt, B, C = (xs @ p["x_proj.weight"].T).split([R, N, N], dim=-1)
    dt = F.softplus(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"])
    A = -p["A_log"].exp()
    h = x.new_zeros(x.shape[0], E, N, dtype=torch.float64)
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * xs[:, t])[..., None] * B[:, t, None, :]
        ys.append(((h * C[:, t, None, :]).sum(-1) + p["D"] * xs[:, t]) * F.silu(z[:, t]))
    return torch.stack(ys, 1) @ p["out_proj.weight"].T


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_forward_matches_oracle():
    mixer = make(d_model=12, d_state=5)
    x = torch.randn(2, 21, 12)
    y, _ = mixer(x)
    torch.testing.assert_close(y.double(), oracle(mixer, x), rtol=1e-5, atol=1e-6)


def test_step_agrees_with_forward():
    mixer = make(d_model=8, d_state=4)
    x = torch.randn(3, 33, 8)
    y, (conv_state, ssm_state) = mixer(x)
    state, ys = None, []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[0], conv_state, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[1], ssm_state, rtol=1e-5, atol=1e-6)


def test_state_hand_over_between_pieces():
    mixer = make(d_model=8)
    x = torch.randn(2, 40, 8)
    y, (conv_state, ssm_state) = mixer(x)
    y1, state1 = mixer(x[:, :2])  # shorter than the conv's window
    y2, state2 = mixer(x[:, 2:17], state1)
    y3, state3 = mixer(x[:, 17:], state2)
    torch.testing.assert_close(torch.cat([y1, y2, y3], 1), y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state3[0], conv_state, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state3[1], ssm_state, rtol=1e-5, atol=1e-6)
    assert state3[0].shape == (2, 16, 3) and state3[1].shape == (2, 16, 16) and state3[1].dtype == torch.float32


@pytest.mark.parametrize("d_model,kwargs", [(8, {}), (48, {}), (20, {"d_state": 7, "d_conv": 3, "expand": 3}),
                                            (16, {"dt_rank": 5, "bias": True})])  # fmt: skip
def test_parameter_count_formula(d_model, kwargs):
    E = kwargs.get("expand", 2) * d_model
    N, W = kwargs.get("d_state", 16), kwargs.get("d_conv", 4)
    R = kwargs.get("dt_rank", math.ceil(d_model / 16))
    shared = 2 * E * d_model + E * d_model  # in_proj, out_proj
    if kwargs.get("bias"):
        shared += 2 * E + d_model
    per_direction = (E * W + E) + E * (R + 2 * N) + (R * E + E) + E * N + E  # conv, x_proj, dt_proj, A_log, D
    assert n_params(Mamba(d_model, **kwargs)) == shared + per_direction
    assert n_params(Mamba(d_model, bidirectional=True, **kwargs)) == shared + 2 * per_direction


def test_vim_tiny_layer_size():
    """Vim-T: 24 layers of d_model 192 hold most of its 7M parameters."""
    assert n_params(Mamba(192, bidirectional=True)) == 2 * 192 * 384 + 384 * 192 + 2 * (
        384 * 5 + 384 * (12 + 32) + 12 * 384 + 384 + 384 * 16 + 384
    )


@pytest.mark.parametrize("bidirectional", [False, True])
def test_initialisation(bidirectional):
    mixer = make(d_model=64, d_state=16, dt_scale=2.0, bidirectional=bidirectional)
    suffixes = ["", "_b"] if bidirectional else [""]
    for suffix in suffixes:
        dt_proj = getattr(mixer, "dt_proj" + suffix)
        dt = F.softplus(dt_proj.bias.detach())
        assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 1e-1 * (1 + 1e-5)
        assert dt.log().std() > 0.5  # spread over the two decades, not clumped
        bound = 2.0 * mixer.dt_rank**-0.5
        assert dt_proj.weight.abs().max() <= bound and dt_proj.weight.abs().max() > 0.5 * bound
        A = -getattr(mixer, "A_b_log" if suffix else "A_log").detach().exp()
        torch.testing.assert_close(A, -torch.arange(1.0, 17.0).expand(128, 16))
        torch.testing.assert_close(getattr(mixer, "D" + suffix).detach(), torch.ones(128))
    assert mixer.A_log._no_weight_decay and mixer.D._no_weight_decay and mixer.dt_proj.bias._no_reinit
    assert mixer.dt_rank == 4 and mixer.d_inner == 128 and mixer.in_proj.bias is None and mixer.out_proj.bias is None


def test_dt_floor():
    mixer = make(d_model=16, dt_min=1e-6, dt_max=1e-5, dt_init_floor=1e-4)
    torch.testing.assert_close(F.softplus(mixer.dt_proj.bias.detach()), torch.full((32,), 1e-4))


@pytest.mark.parametrize("divide_out", [False, True])
def test_bidirectional_is_the_forward_plus_the_flipped_backward(divide_out):
    """Vim's formulation: out_proj(y_f(x) + flip(y_b(flip(x)))), halved with divide_out."""
    mixer = make(d_model=8, d_state=4, bidirectional=True, divide_out=divide_out)
    params = mixer.state_dict()
    forward_branch, backward_branch = Mamba(8, d_state=4), Mamba(8, d_state=4)
    shared = {k: v for k, v in params.items() if k.startswith(("in_proj", "out_proj"))}
    forward_branch.load_state_dict({k: v for k, v in params.items() if "_b" not in k})
    backward_own = {k.replace("A_b_log", "A_log").replace("_b", ""): v for k, v in params.items() if "_b" in k}
    backward_branch.load_state_dict(shared | backward_own)
    x = torch.randn(2, 19, 8)
    y, state = mixer(x)
    expected = forward_branch(x)[0] + backward_branch(x.flip(1))[0].flip(1)
    torch.testing.assert_close(y, expected / 2 if divide_out else expected, rtol=1e-5, atol=1e-6)
    assert state is None


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_reach_every_parameter(bidirectional):
    mixer = make(d_model=8, d_state=4, bidirectional=bidirectional)
    x = torch.randn(2, 11, 8, requires_grad=True)
    y, _ = mixer(x)
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_gradient_flows_into_the_state():
    mixer = make(d_model=8, d_state=4)
    conv_state = torch.randn(2, 16, 3, requires_grad=True)
    ssm_state = torch.randn(2, 16, 4, requires_grad=True)
    y, (c, h) = mixer(torch.randn(2, 5, 8), (conv_state, ssm_state))
    (y.sum() + h.sum()).backward()
    assert conv_state.grad.abs().sum() > 0 and ssm_state.grad.abs().sum() > 0


def test_triton_conv_gives_the_same_output(monkeypatch):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mixer = make(d_model=8, d_state=4, bidirectional=True).to(device)
    x = torch.randn(1, 9, 8, device=device)
    y, _ = mixer(x)
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    torch.testing.assert_close(mixer(x)[0], y, rtol=1e-5, atol=1e-6)


def test_low_precision_input_keeps_its_dtype():
    mixer = make(d_model=8).bfloat16()
    y, (conv_state, ssm_state) = mixer(torch.randn(2, 6, 8).bfloat16())
    assert y.dtype == conv_state.dtype == torch.bfloat16 and ssm_state.dtype == torch.float32


def test_built_by_name():
    mixer = build_mixer("mamba", d_model=16, bidirectional=True, divide_out=True, d_state=8)
    assert isinstance(mixer, Mamba) and mixer.bidirectional and mixer.divide_out and mixer.d_state == 8
    assert mixer(torch.randn(1, 4, 16))[0].shape == (1, 4, 16)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m(torch.randn(2, 5, 7)), ValueError, r"d_model = 8.*\(2, 5, 7\)"),
        (lambda m: m.step(torch.randn(2, 5, 8)), ValueError, r"\[B, C\]"),
        (lambda m: m(torch.randn(2, 5, 8), torch.zeros(2, 16, 3)), TypeError, "pair"),
        (lambda m: m(torch.randn(2, 5, 8), (torch.zeros(2, 16, 4), torch.zeros(2, 16, 16))), ValueError,
         r"conv_state.*\[2, 16, 3\].*\(2, 16, 4\)"),
        (lambda m: m.step(torch.randn(3, 8), (torch.zeros(3, 16, 3), torch.zeros(2, 16, 16))), ValueError,
         r"ssm_state.*\[3, 16, 16\]"),
        (lambda m: m(torch.randn(2, 5, 8), (torch.zeros(2, 16, 3), torch.zeros(2, 16, 16).long())), TypeError,
         "ssm_state"),
    ],
)  # fmt: skip
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call(make())


def test_bidirectional_has_no_step_and_no_state():
    mixer = make(bidirectional=True)
    with pytest.raises(ValueError, match="step.*bidirectional"):
        mixer.step(torch.randn(2, 8))
    with pytest.raises(ValueError, match="bidirectional.*no state"):
        mixer(torch.randn(2, 5, 8), (torch.zeros(2, 16, 3), torch.zeros(2, 16, 16)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"d_model": 0}, "d_model"), ({"d_model": 4, "d_state": 0}, "d_state"), ({"d_model": 4, "d_conv": 0}, "d_conv"),
     ({"d_model": 4, "expand": 1.5}, "expand"), ({"d_model": 4, "dt_rank": 0}, "dt_rank"),
     ({"d_model": 4, "dt_min": 0.1, "dt_max": 0.01}, "dt_min"), ({"d_model": 4, "divide_out": True}, "bidirectional")],
)  # fmt: skip
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Mamba(**kwargs)
