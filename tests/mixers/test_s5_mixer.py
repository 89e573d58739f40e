"""The S5 mixer: its equations, parallel form against the step form, state hand-over, parameters, errors."""

import math

import pytest
import torch
from lrnn.core.mixers import S5, build_mixer


def make(d_model: int = 6, state_size: int = 5, seed: int = 0) -> S5:
    torch.manual_seed(seed)
    return S5(d_model, state_size=state_size)


def oracle(mixer: S5, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The S5 recurrence in complex128, one step at a time, from the raw parameters."""
    p = {name: value.detach().double() for name, value in mixer.named_parameters()}
    lam = torch.complex(-p["log_neg_real"].exp(), p["imag"])
    dt = p["log_dt"].exp()
    lam_bar = torch.exp(lam * dt)
    b_bar = ((lam_bar - 1) / lam)[:, None] * torch.complex(p["B"][..., 0], p["B"][..., 1])
    c = torch.complex(p["C"][..., 0], p["C"][..., 1])
    h = state.to(torch.complex128)
    ys = []
    for t in range(x.shape[1]):
        u = x[:, t].double()
        h = lam_bar * h + u.to(torch.complex128) @ b_bar.T
        ys.append((h @ c.T).real + p["D"] * u)
    return torch.stack(ys, 1), h


@pytest.mark.parametrize("length", [1, 7, 100])
def test_forward_matches_oracle(length):
    mixer = make()
    x = torch.randn(3, length, 6)
    state = torch.randn(3, 5, dtype=torch.complex64)
    y, h = mixer(x, state)
    y_ref, h_ref = oracle(mixer, x, state)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h.to(torch.complex128), h_ref, rtol=1e-5, atol=1e-5)


def test_step_agrees_with_forward():
    mixer = make(d_model=8, state_size=16)
    x = torch.randn(4, 65, 8)
    y, h = mixer(x)
    state, ys = None, []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state, h, rtol=1e-5, atol=1e-6)


def test_state_hand_over_between_pieces():
    mixer = make()
    x = torch.randn(2, 50, 6)
    y, h = mixer(x)
    y1, h1 = mixer(x[:, :23])
    y2, h2 = mixer(x[:, 23:], h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h2, h, rtol=1e-5, atol=1e-6)


def test_parameter_count_formula():
    for d_model, state_size in [(1, 1), (6, 5), (64, 32)]:
        mixer = S5(d_model, state_size=state_size)
        expected = 3 * state_size + 4 * state_size * d_model + d_model
        assert sum(p.numel() for p in mixer.parameters()) == expected


def test_initialisation():
    mixer = S5(4, state_size=200, dt_min=1e-3, dt_max=1e-1)
    torch.testing.assert_close(-mixer.log_neg_real.exp(), torch.full((200,), -0.5))
    torch.testing.assert_close(mixer.imag, math.pi * torch.arange(200.0))
    dt = mixer.log_dt.exp()
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    lam_bar, _ = mixer.discretize()
    assert lam_bar.abs().max() < 1


def test_gradients_reach_every_parameter():
    mixer = make()
    y, h = mixer(torch.randn(2, 30, 6))
    (y.square().sum() + h.abs().sum()).backward()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_low_precision_input_keeps_its_dtype():
    mixer = make()
    x = torch.randn(2, 9, 6)
    y16, _ = mixer(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), mixer(x.bfloat16().float())[0], rtol=1e-2, atol=1e-2)


def test_built_by_name():
    mixer = build_mixer("s5", d_model=6, state_size=3, dt_min=0.01, dt_max=0.01)
    assert isinstance(mixer, S5) and mixer.state_size == 3
    torch.testing.assert_close(mixer.log_dt.exp(), torch.full((3,), 0.01))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m(torch.randn(2, 5, 7)), ValueError, r"d_model = 6.*\(2, 5, 7\)"),
        (lambda m: m(torch.randn(2, 6)), ValueError, r"\[B, L, C\]"),
        (lambda m: m(torch.ones(2, 5, 6, dtype=torch.int64)), TypeError, "int64"),
        (lambda m: m(torch.randn(2, 5, 6), torch.zeros(2, 4, dtype=torch.complex64)), ValueError, r"\[2, 5\]"),
        (lambda m: m(torch.randn(2, 5, 6), torch.zeros(2, 5)), TypeError, "complex64"),
        (lambda m: m.step(torch.randn(2, 5, 6)), ValueError, r"\[B, C\]"),
        (lambda m: m.step(torch.randn(3, 6), torch.zeros(2, 5, dtype=torch.complex64)), ValueError, r"\[3, 5\]"),
        (lambda m: m("x"), TypeError, "str"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call(make())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": 4, "state_size": 0}, "state_size"),
        ({"d_model": 4, "dt_min": 0.1, "dt_max": 0.01}, "dt_min"),
        ({"d_model": 4, "dt_min": 0.0}, "dt_min"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S5(**kwargs)
