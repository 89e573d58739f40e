"""The mixers on ``chunk_gla``: gla, retnet, mamba2, rwkv6, mlstm.

For each: step form against the parallel form, pieces with the state handed on against the whole, parameter count
against its docstring formula, gradients to every parameter, building by name, bad states named. RWKV-6 and mLSTM
also against float64 loops written from the papers' equations (their ``chunk_gla`` forms rearrange the recurrence),
and in the directions LION runs them: RWKV-6's bidirectional WKV (against LION's kernel's two loops), mLSTM reversed.
"""

import pytest
import torch
import torch.nn.functional as F
from lrnn.core.mixers import build_mixer
from lrnn.core.mixers.gla import GLA
from lrnn.core.mixers.mamba2 import Mamba2
from lrnn.core.mixers.mlstm import MLSTM
from lrnn.core.mixers.retnet import RetNet
from lrnn.core.mixers.rwkv6 import RWKV6, wkv6

D = 16
CONFIGS = {
    "gla": dict(num_heads=2, expand_k=1, expand_v=2, gate_low_rank_dim=4, use_short_conv=True, conv_size=3),
    "gla-fla-defaults": dict(num_heads=2),
    "retnet": dict(num_heads=2),
    "retnet-lion": dict(num_heads=2, rotary=False, output_gate=False, out_gain=2**-2.5),
    "mamba2": dict(d_state=8, headdim=8, d_conv=4),
    "rwkv6": dict(head_dim=8, mix_low_rank_dim=4, decay_low_rank_dim=6, layer_idx=1, num_layers=3),
    "mlstm": dict(num_heads=2, expand_v=2),
}


def mixer_name(key: str) -> str:
    return key.split("-")[0]


def make(key: str, seed: int = 0, d_model: int = D, **overrides):
    """The mixer with every parameter moved off its initial value, so no term is zero and outputs are O(1)."""
    torch.manual_seed(seed)
    mixer = build_mixer(mixer_name(key), d_model=d_model, **{**CONFIGS[key], **overrides})
    with torch.no_grad():
        for param in mixer.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return mixer


def assert_float32_agree(actual, expected):
    """Two float32 forms of one computation agree to rounding: ``rtol`` 1e-4, and ``atol`` 1e-5 or 32 float32 epsilons
    of the largest output, whichever is larger (retnet-lion's outputs reach about 100, where one sum's rounding
    passes 1e-5; a wrong term is off by orders of magnitude more)."""
    scale = 32 * torch.finfo(torch.float32).eps * expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=max(1e-5, scale))


def run_steps(mixer, x, state=None):
    ys = []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, 1), state


def assert_states_close(a, b):
    for field, (u, v) in zip(a._fields, zip(a, b, strict=True), strict=True):
        if isinstance(u, torch.Tensor):
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5, msg=lambda m, f=field: f"state.{f}: {m}")
        else:
            assert u == v, field


@pytest.mark.parametrize("key", CONFIGS)
def test_step_agrees_with_forward(key):
    mixer = make(key)
    x = torch.randn(2, 70, D)
    with torch.no_grad():
        y, state = mixer(x)
        y_steps, state_steps = run_steps(mixer, x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert_float32_agree(y_steps, y)
    assert_states_close(state_steps, state)


@pytest.mark.parametrize("key", CONFIGS)
def test_state_hand_over_between_pieces(key):
    mixer = make(key)
    x = torch.randn(2, 41, D)
    with torch.no_grad():
        y, state = mixer(x)
        y1, s1 = mixer(x[:, :2])
        y2, s2 = mixer(x[:, 2:30], s1)
        y3, s3 = mixer.step(x[:, 30], s2)
        y4, s4 = mixer(x[:, 31:], s3)
    assert_float32_agree(torch.cat([y1, y2, y3[:, None], y4], 1), y)
    assert_states_close(s4, state)


def gla_count(c, num_heads=4, expand_k=0.5, expand_v=1.0, gate_low_rank_dim=16, use_short_conv=False, conv_size=4):
    dk, dv, r = int(c * expand_k), int(c * expand_v), gate_low_rank_dim
    conv = conv_size * (2 * dk + dv) if use_short_conv else 0
    return c * (2 * dk + 2 * dv) + r * (c + dk) + dk + dv * c + dv // num_heads + conv


def retnet_count(c, num_heads=8, expand_k=1.0, expand_v=2.0, output_gate=True, **_):
    dk, dv = int(c * expand_k), int(c * expand_v)
    return 2 * c * dk + 3 * c * dv + 2 * dv if output_gate else 2 * c * dk + 2 * c * dv


def mamba2_count(c, d_state=128, headdim=64, d_conv=4, expand=2):
    e, n = expand * c, d_state
    h = e // headdim
    return c * (2 * e + 2 * n + h) + (e + 2 * n) * (d_conv + 1) + 3 * h + e + e * c


def rwkv6_count(c, mix_low_rank_dim=32, decay_low_rank_dim=64, **_):
    return 5 * c * c + (10 * mix_low_rank_dim + 2 * decay_low_rank_dim + 10) * c


def mlstm_count(c, num_heads=4, expand_k=1.0, expand_v=1.0):
    dk, dv = int(c * expand_k), int(c * expand_v)
    return 2 * c * dk + 3 * c * dv + dv + 2 * num_heads * (c + 1)


COUNTS = {"gla": gla_count, "retnet": retnet_count, "mamba2": mamba2_count, "rwkv6": rwkv6_count, "mlstm": mlstm_count}


@pytest.mark.parametrize("key", CONFIGS)
@pytest.mark.parametrize("d_model", [16, 64])
def test_parameter_count_formula(key, d_model):
    mixer = build_mixer(mixer_name(key), d_model=d_model, **CONFIGS[key])
    assert sum(p.numel() for p in mixer.parameters()) == COUNTS[mixer_name(key)](d_model, **CONFIGS[key])


def test_parameter_count_at_paper_sizes():
    """Defaults at d_model = 1024 (Lina-Speech's GLA with expand_k = 1, expand_v = 2 and short conv)."""
    cases = [
        (GLA(1024, num_heads=4, expand_k=1, expand_v=2, use_short_conv=True), gla_count(1024, 4, 1, 2, 16, True, 4)),
        (GLA(1024), gla_count(1024)),
        (RetNet(1024), retnet_count(1024)),
        (Mamba2(1024), mamba2_count(1024)),
        (RWKV6(1024), rwkv6_count(1024)),
        (MLSTM(1024), mlstm_count(1024)),
    ]
    for mixer, expected in cases:
        assert sum(p.numel() for p in mixer.parameters()) == expected, type(mixer).__name__


@pytest.mark.parametrize("key", CONFIGS)
def test_gradients_reach_every_parameter(key):
    mixer = make(key)
    x = torch.randn(2, 19, D, requires_grad=True)
    y, state = mixer(x)
    loss = y.square().sum() + state.recurrent.square().sum()
    loss.backward()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("key", CONFIGS)
def test_gradient_reaches_the_initial_state(key):
    mixer = make(key)
    x = torch.randn(2, 9, D)
    with torch.no_grad():
        _, state = mixer(x[:, :4])
    leaf = state.recurrent.clone().requires_grad_(True)
    y, _ = mixer(x[:, 4:], state._replace(recurrent=leaf))
    y.square().sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


def test_initialisations():
    mixer = RetNet(32, num_heads=4)
    torch.testing.assert_close(mixer.log_decay.exp(), 1 - 2.0 ** -torch.arange(5.0, 9.0))
    mamba = Mamba2(32, d_state=4, headdim=8, dt_min=0.01, dt_max=0.02)
    dt = F.softplus(mamba.dt_bias)
    assert dt.min() >= 0.01 * (1 - 1e-5) and dt.max() <= 0.02 * (1 + 1e-5)
    assert (-mamba.A_log.exp() <= -1).all() and (-mamba.A_log.exp() >= -16).all()
    torch.testing.assert_close(mamba.D, torch.ones(8))
    rwkv = RWKV6(32, head_dim=8)
    assert rwkv.mix_a.abs().sum() == 0 and rwkv.mix_b.abs().max() <= 0.01
    torch.testing.assert_close(rwkv.decay[[0, -1]], torch.tensor([-6.0, -1.0]))
    mlstm = MLSTM(32, num_heads=4)
    torch.testing.assert_close(mlstm.f_proj.bias, torch.tensor([3.0, 4.0, 5.0, 6.0]))
    gla = GLA(32)
    assert gla.gk_proj[1].bias.abs().sum() == 0


def rwkv6_oracle(mixer: RWKV6, x: torch.Tensor, bidirectional: bool = False) -> torch.Tensor:
    """RWKV-6 time mixing in float64, one token at a time, written out from the paper (the authors' x060 code);
    ``bidirectional`` as LION's wkv6 kernel: a backward loop over the later tokens (no bonus), then the forward
    loop, summed."""
    m = mixer.double()
    x = x.double()
    batch, length, c = x.shape
    heads, k_dim = m.num_heads, m.head_dim
    previous = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
    r, k, v, w, g = [], [], [], [], []
    for t in range(length):
        xt = x[:, t]
        dx = previous[:, t] - xt
        lora = torch.tanh((xt + dx * m.mu_x) @ m.mix_a).view(batch, 5, -1)
        mixed = torch.einsum("bnr,nrc->bnc", lora, m.mix_b)
        xw, xk, xv, xr, xg = (xt + dx * (m.mu[i] + mixed[:, i]) for i in range(5))
        for out, proj, z in ((r, m.r_proj, xr), (k, m.k_proj, xk), (v, m.v_proj, xv)):
            out.append(proj(z).view(batch, heads, k_dim))
        w.append(torch.exp(-torch.exp(m.decay + torch.tanh(xw @ m.decay_a) @ m.decay_b)).view(batch, heads, k_dim))
        g.append(m.g_proj(xg))
    o = [0.0] * length
    state = torch.zeros(batch, heads, k_dim, k_dim, dtype=torch.float64)
    for t in reversed(range(length)) if bidirectional else ():
        o[t] = torch.einsum("bhk,bhkv->bhv", r[t], state)
        state = w[t].unsqueeze(-1) * state + k[t].unsqueeze(-1) * v[t].unsqueeze(-2)
    state = torch.zeros_like(state)
    ys = []
    for t in range(length):
        kv = k[t].unsqueeze(-1) * v[t].unsqueeze(-2)
        ot = o[t] + torch.einsum("bhk,bhkv->bhv", r[t], state + m.bonus.unsqueeze(-1) * kv)
        state = w[t].unsqueeze(-1) * state + kv
        ot = F.group_norm(ot.reshape(batch, c), heads, m.group_norm.weight, m.group_norm.bias, m.group_norm.eps)
        ys.append(m.o_proj(ot * F.silu(g[t])))
    m.float()
    return torch.stack(ys, 1)


def mlstm_oracle(mixer: MLSTM, x: torch.Tensor) -> torch.Tensor:
    """The mLSTM cell (sigmoid input gate) in float64, one step at a time, ``C`` as in the paper (``[V, K]``)."""
    m = mixer.double()
    x = x.double()
    batch, length, _ = x.shape
    heads, k_dim, v_dim = m.num_heads, m.head_k_dim, m.head_v_dim
    memory = torch.zeros(batch, heads, v_dim, k_dim, dtype=torch.float64)
    normaliser = torch.zeros(batch, heads, k_dim, dtype=torch.float64)
    ys = []
    for t in range(length):
        xt = x[:, t]
        q = m.q_proj(xt).view(batch, heads, k_dim)
        k = m.k_proj(xt).view(batch, heads, k_dim) / k_dim**0.5
        v = m.v_proj(xt).view(batch, heads, v_dim)
        i = torch.sigmoid(m.i_proj(xt)).unsqueeze(-1)
        f = torch.sigmoid(m.f_proj(xt)).unsqueeze(-1)
        memory = f.unsqueeze(-1) * memory + i.unsqueeze(-1) * v.unsqueeze(-1) * k.unsqueeze(-2)
        normaliser = f * normaliser + i * k
        numerator = torch.einsum("bhvk,bhk->bhv", memory, q)
        denominator = torch.einsum("bhk,bhk->bh", normaliser, q).abs().clamp(min=1).unsqueeze(-1)
        h = torch.sigmoid(m.o_gate(xt)) * (numerator / denominator).reshape(batch, -1)
        ys.append(m.out_proj(h))
    m.float()
    return torch.stack(ys, 1)


@pytest.mark.parametrize(("key", "oracle"), [("rwkv6", rwkv6_oracle), ("mlstm", mlstm_oracle)])
def test_against_float64_loop_from_the_paper(key, oracle):
    mixer = make(key)
    x = torch.randn(2, 70, D)
    with torch.no_grad():
        y, _ = mixer(x)
        y_ref = oracle(mixer, x)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-5)


def test_rwkv6_bidirectional_against_lions_two_loops():
    mixer = make("rwkv6", bidirectional=True)
    assert sum(p.numel() for p in mixer.parameters()) == rwkv6_count(D, **CONFIGS["rwkv6"])  # one set, both ways
    x = torch.randn(2, 70, D)
    with torch.no_grad():
        y, state = mixer(x)
        y_ref = rwkv6_oracle(mixer, x, bidirectional=True)
    assert state is None
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-5)


def wkv6_inputs(batch=2, length=11, heads=2, k_dim=3, v_dim=4, seed=0):
    """Random float64 ``r, k, v, log w, u`` for ``wkv6``, leaves that require gradients."""
    generator = torch.Generator().manual_seed(seed)
    r, k, log_w = (torch.randn(batch, length, heads, k_dim, generator=generator, dtype=torch.float64) for _ in range(3))
    v = torch.randn(batch, length, heads, v_dim, generator=generator, dtype=torch.float64)
    bonus = torch.randn(heads, k_dim, generator=generator, dtype=torch.float64)
    return [t.requires_grad_() for t in (r, k, v, -F.softplus(log_w), bonus)]


def test_wkv6_bidirectional_is_the_causal_pass_plus_the_flipped_pass_without_a_second_bonus():
    """LION's kernel: the flipped pass adds the later tokens; the current one enters once, through the bonus."""
    r, k, v, log_w, bonus = wkv6_inputs()
    both, state = wkv6(r, k, v, log_w, bonus, bidirectional=True)
    causal, _ = wkv6(r, k, v, log_w, bonus)
    flipped, _ = wkv6(*(t.flip(1) for t in (r, k, v, log_w)), torch.zeros_like(bonus))
    assert state is None
    torch.testing.assert_close(both, causal + flipped.flip(1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_wkv6_gradients_match_finite_differences(bidirectional):
    inputs = wkv6_inputs(batch=1, length=6, heads=1, k_dim=2, v_dim=2)
    assert torch.autograd.gradcheck(lambda *t: wkv6(*t, bidirectional=bidirectional)[0], inputs)


def test_rwkv6_bidirectional_gradients_reach_every_parameter_and_refuse_states():
    mixer = make("rwkv6", bidirectional=True)
    x = torch.randn(2, 19, D, requires_grad=True)
    mixer(x)[0].square().sum().backward()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    assert x.grad[:, 0].abs().sum() > 0  # the first token reaches later outputs through the forward scan
    _, state = make("rwkv6")(x)
    with pytest.raises(ValueError, match="bidirectional rwkv6 mixer runs over whole sequences"):
        mixer(x, state)
    with pytest.raises(ValueError, match="step"):
        mixer.step(x[:, 0])
    r, k, v, log_w, bonus = wkv6_inputs()
    with pytest.raises(ValueError, match=r"bonus must be \[H, K\] = \[2, 3\]"):
        wkv6(r, k, v, log_w, bonus[:, :2])
    with pytest.raises(ValueError, match="initial_state"):
        wkv6(r, k, v, log_w, bonus, torch.zeros(2, 2, 3, 4, dtype=torch.float64), bidirectional=True)


def test_mlstm_reverse_is_the_causal_pass_over_the_flipped_sequence():
    causal = make("mlstm").double()
    reverse = build_mixer("mlstm", d_model=D, **CONFIGS["mlstm"], reverse=True).double()
    reverse.load_state_dict(causal.state_dict())
    x = torch.randn(2, 37, D, dtype=torch.float64)
    y, state = reverse(x)
    y_flipped, state_flipped = causal(x.flip(1))
    torch.testing.assert_close(y, y_flipped.flip(1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state.recurrent, state_flipped.recurrent, rtol=1e-10, atol=1e-10)


def test_mlstm_reverse_streams_from_the_last_step_and_hands_its_state_to_the_piece_before():
    mixer = make("mlstm", reverse=True)
    x = torch.randn(2, 41, D)
    with torch.no_grad():
        y, state = mixer(x)
        y_steps, state_steps = run_steps(mixer, x.flip(1))
        y_late, s_late = mixer(x[:, 30:])
        y_early, s_early = mixer(x[:, :30], s_late)
    assert_float32_agree(y_steps.flip(1), y)
    assert_float32_agree(torch.cat([y_early, y_late], 1), y)
    assert_states_close(state_steps, state)
    assert_states_close(s_early, state)


def test_mlstm_reverse_gradients_reach_every_parameter_and_the_last_input():
    mixer = make("mlstm", reverse=True)
    x = torch.randn(2, 19, D, requires_grad=True)
    y, state = mixer(x)
    (y[:, 0].square().sum() + state.recurrent.square().sum()).backward()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    assert x.grad[:, -1].abs().sum() > 0  # the first output reads the last input


def test_lion_retention_against_a_float64_loop():
    """LION's retention (no rotation, no gate, no norm): ``y_t = W_o concat_h sum_{s <= t} gamma_h^(t-s) K^-1/2
    (q_t . k_s) v_s``."""
    mixer = make("retnet-lion").double()
    x = torch.randn(2, 30, D, dtype=torch.float64)
    with torch.no_grad():
        y, _ = mixer(x)
        q, k, v = (proj(x).unflatten(-1, (2, -1)) for proj in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
        gamma = mixer.log_decay.double().exp()
        steps = torch.arange(30.0, dtype=torch.float64)
        decay = gamma[:, None, None] ** (steps[:, None] - steps[None, :])  # [H, t, s]
        scores = torch.einsum("bthk,bshk->bhts", q, k) * q.shape[-1] ** -0.5 * decay.tril()
        expected = mixer.o_proj(torch.einsum("bhts,bshv->bthv", scores, v).flatten(-2))
    torch.testing.assert_close(y, expected)
    assert mixer.g_proj is None and mixer.group_norm is None


def test_retnet_depends_on_relative_positions_only():
    """Rotation by absolute positions: feeding the same inputs from offset 0 or 1000 with a zero state is equal."""
    mixer = make("retnet")
    x = torch.randn(1, 12, D)
    with torch.no_grad():
        y0, s0 = mixer(x)
        state = s0._replace(recurrent=torch.zeros_like(s0.recurrent), offset=1000)
        y1, s1 = mixer(x, state)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5)
    assert s0.offset == 12 and s1.offset == 1012


def test_built_by_name():
    assert isinstance(build_mixer("gla", d_model=8, num_heads=2), GLA)
    assert isinstance(build_mixer("retnet", d_model=8, num_heads=2), RetNet)
    assert isinstance(build_mixer("mamba2", d_model=8, d_state=4, headdim=4), Mamba2)
    assert isinstance(build_mixer("rwkv6", d_model=8, head_dim=4), RWKV6)
    assert isinstance(build_mixer("mlstm", d_model=8, num_heads=2), MLSTM)


@pytest.mark.parametrize("key", ["gla", "retnet", "mamba2", "rwkv6", "mlstm"])
def test_bad_state_is_named(key):
    mixer = make(key)
    x = torch.randn(2, 5, D)
    _, state = mixer(x)
    with pytest.raises(TypeError, match="state must be"):
        mixer(x, (state.recurrent,))
    with pytest.raises(ValueError, match=r"state.recurrent must have shape \[3,"):
        mixer(torch.randn(3, 5, D), state)
    with pytest.raises(ValueError, match=r"\[B, L, C\]"):
        mixer(torch.randn(2, D))


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("gla", {"num_heads": 3}, "num_heads = 3"),
        ("gla", {"num_heads": 0}, "num_heads"),
        ("gla", {"gate_logit_normalizer": 0}, "gate_logit_normalizer"),
        ("retnet", {"num_heads": 16, "expand_k": 1}, "even"),
        ("mamba2", {"headdim": 5}, "headdim = 5"),
        ("mamba2", {"headdim": 8, "dt_min": 0.1, "dt_max": 0.01}, "dt_min"),
        ("rwkv6", {"head_dim": 5}, "head_dim = 5"),
        ("rwkv6", {"head_dim": 4, "layer_idx": 2, "num_layers": 2}, "layer_idx"),
        ("mlstm", {"num_heads": 5}, "num_heads = 5"),
    ],
)
def test_bad_constructor_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_mixer(name, d_model=D, **kwargs)


def test_retnet_under_autocast_keeps_one_dtype_for_q_k_v():
    """The float32 rotary angles must not leave q and k in float32 while v is 16-bit (chunk_gla refuses that)."""
    mixer = RetNet(32, num_heads=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixer(torch.randn(2, 9, 32))
    y = y[0] if isinstance(y, tuple) else y
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


def test_rwkv6_token_mixing_saves_activations_linear_in_the_input_only():
    """The ddlerp's low-rank products keep a few input-sized tensors for the backward, not a copy of the [5, R, C]
    LoRA matrix per token (a broadcast matmul made one and ran LION's rwkv6 out of 80 GB)."""
    mixer = make("rwkv6", d_model=128, head_dim=32, mix_low_rank_dim=32)
    x = torch.randn(2, 64, 128, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        mixer._mix(x, torch.roll(x, 1, 1))
    assert sum(saved) < 40 * x.numel()  # about 21; the copy alone was 5 R = 160
