"""PGN: a step checked by hand, causality, groups. TPGN: shapes, the authors' architecture (parameter count and a
grouped-Conv1d re-implementation of their forward), channel independence, per-series normalisation, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from lrnn.timeseries.forecast import PGN, TPGN


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_pgn_step_by_hand():
    pgn = PGN(d_in=1, d_model=1, window=2).double()
    # HIE weight [groups, window * d_in, d_model] (oldest step first); gate weight rows [x, H], columns [gate, cand.]
    with torch.no_grad():
        pgn.hie.weight.copy_(torch.tensor([[[0.5], [2.0]]], dtype=torch.float64))
        pgn.hie.bias.fill_(0.1)
        pgn.gate.weight.copy_(torch.tensor([[[0.3, -0.2], [0.4, 0.6]]], dtype=torch.float64))
        pgn.gate.bias.copy_(torch.tensor([[-0.1, 0.05]], dtype=torch.float64))
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).view(1, 3, 1, 1)
    out = pgn(x).flatten().tolist()
    history = [0.1, 2.0 * 1 + 0.1, 0.5 * 1 + 2.0 * 2 + 0.1]  # H_t reads x_{t-2}, x_{t-1} (zeros before the start)
    for t, (x_t, h) in enumerate(zip([1.0, 2.0, 3.0], history, strict=True)):
        g = sigmoid(0.3 * x_t + 0.4 * h - 0.1)
        candidate = math.tanh(-0.2 * x_t + 0.6 * h + 0.05)
        assert out[t] == pytest.approx(g * h + (1 - g) * candidate, abs=1e-12), t


def test_pgn_history_is_causal_and_windowed_and_groups_are_independent():
    torch.manual_seed(0)
    pgn = PGN(d_in=3, d_model=4, window=3, groups=2).double()
    x = torch.randn(2, 10, 2, 3, dtype=torch.float64)
    h = pgn.history(x)
    moved = x.clone()
    moved[:, 4, 0] += 1.0
    changed = (pgn.history(moved) - h).abs().amax(dim=(0, 3))  # [T, groups]
    assert changed[:, 1].max() == 0  # the other group does not see it
    assert (changed[:, 0] > 0).tolist() == [t in (5, 6, 7) for t in range(10)]  # only the next `window` steps
    out_changed = (pgn(moved) - pgn(x)).abs().amax(dim=(0, 2, 3))
    assert (out_changed > 0).tolist() == [t in (4, 5, 6, 7) for t in range(10)]  # x_t enters through the gate
    with pytest.raises(ValueError, match=r"x must be \[B, T, 2, 3\]"):
        pgn(torch.zeros(2, 10, 3, 3, dtype=torch.float64))


@pytest.mark.parametrize("horizon, channels", [(168, 1), (1440, 1), (50, 3), (96, 7)])
def test_tpgn_shapes(horizon, channels):
    model = TPGN(input_len=96, horizon=horizon, n_channels=channels, n_time_features=4, period=24, d_model=3)
    y = model(torch.randn(2, 96, channels), torch.rand(2, 96, 4) - 0.5, torch.rand(2, horizon, 4) - 0.5)
    assert y.shape == (2, horizon, channels)


def test_tpgn_has_the_authors_parameter_count():
    # ETTh1 168 -> 168, d_model 2, one channel, 4 time features, R = 7 rows of P = 24 (inputs per step: 1 + 4 = 5):
    # HIE 6*5*2+2, gate 7*4+4, rows 7*2*2+2, within-row 24*5*2+2, across-rows 7*2*2+2, head 4*7+7.
    model = TPGN(168, 168, 1, 4, period=24, d_model=2)
    assert sum(p.numel() for p in model.parameters()) == 62 + 32 + 30 + 242 + 30 + 35 == 431


def conv_weight(weight: torch.Tensor, taps: int, order: str) -> torch.Tensor:
    """A ``GroupedLinear`` weight ``[G, taps * d, out]`` as a grouped ``Conv1d`` weight ``[G * out, d, taps]``;
    ``order`` says how the flat input index is laid out (``"feature-major"``: ``d * taps + k``, else ``k * d + d``)."""
    groups, flat, out = weight.shape
    d = flat // taps
    w = weight.reshape(groups, d, taps, out) if order == "feature-major" else weight.reshape(groups, taps, d, out)
    w = w.permute(0, 3, 1, 2) if order == "feature-major" else w.permute(0, 3, 2, 1)
    return w.reshape(groups * out, d, taps)


def reference_tpgn(model: TPGN, x: torch.Tensor, x_mark: torch.Tensor) -> torch.Tensor:
    """TPGN's forward as the authors write it (grouped Conv1d layers over folded tensors, one group per channel),
    with ``model``'s weights."""
    B, L, C = x.shape
    P, R, d = model.period, model.rows, model.long_term.d_model
    mean = x.mean(1, keepdim=True)
    std = torch.sqrt(torch.var(x - mean, dim=1, keepdim=True, unbiased=False) + 1e-5)
    x = (x - mean) / std
    z = torch.cat([x.reshape(B, R, P, C, 1), x_mark.reshape(B, R, P, 1, -1).expand(B, R, P, C, -1)], dim=-1)
    d_in = z.shape[-1]
    pgn, long_rows = model.long_term.pgn, model.long_term.rows
    # long-term: rows of every column, zero-padded by R - 1, HIE conv with kernel R - 1 over all but the last row
    seq = z.permute(0, 2, 3, 4, 1).reshape(B * P, C * d_in, R)
    padded = torch.cat([seq.new_zeros(B * P, C * d_in, R - 1), seq], dim=-1)[..., :-1]
    hie = F.conv1d(padded, conv_weight(pgn.hie.weight, R - 1, "feature-major"), pgn.hie.bias.flatten(), groups=C)
    h = hie.reshape(B * P, C, d, R)
    joint = torch.cat([seq.reshape(B * P, C, d_in, R), h], dim=2).reshape(B * P, C * (d_in + d), R)
    gates = F.conv1d(joint, conv_weight(pgn.gate.weight, 1, "feature-major"), pgn.gate.bias.flatten(), groups=C)
    g, cand = gates.reshape(B * P, C, 2 * d, R).split(d, dim=2)
    g = torch.sigmoid(g)
    hid = (g * h + (1 - g) * torch.tanh(cand)).reshape(B * P, C * d, R)
    long = F.conv1d(hid, conv_weight(long_rows.weight, R, "time-major"), long_rows.bias.flatten(), groups=C)
    long = long.reshape(B, P, C, d)
    # short-term: each row's P steps, then the R rows
    within, across = model.short_term.within_row, model.short_term.across_rows
    rows = z.permute(0, 1, 3, 4, 2).reshape(B * R, C * d_in, P)
    per_row = F.conv1d(rows, conv_weight(within.weight, P, "time-major"), within.bias.flatten(), groups=C)
    per_row = per_row.reshape(B, R, C * d).transpose(1, 2)
    short = F.conv1d(per_row, conv_weight(across.weight, R, "time-major"), across.bias.flatten(), groups=C)
    short = short.reshape(B, 1, C, d).expand(B, P, C, d)
    both = torch.cat([short, long], dim=-1).reshape(B * P, C * 2 * d, 1)
    head = model.head
    out = F.conv1d(both, conv_weight(head.weight, 1, "feature-major"), head.bias.flatten(), groups=C)
    out = out.reshape(B, P, C, -1).permute(0, 3, 1, 2).reshape(B, -1, C)[:, : model.horizon]
    return out * std + mean


def test_tpgn_equals_a_grouped_conv_reimplementation_of_the_authors_forward():
    torch.manual_seed(0)
    model = TPGN(input_len=120, horizon=60, n_channels=3, n_time_features=4, period=24, d_model=5).double()
    x = 3 * torch.randn(4, 120, 3, dtype=torch.float64) + 1
    x_mark = torch.rand(4, 120, 4, dtype=torch.float64) - 0.5
    y = model(x, x_mark, torch.zeros(4, 60, 4, dtype=torch.float64))
    torch.testing.assert_close(y, reference_tpgn(model, x, x_mark), rtol=1e-10, atol=1e-10)


def test_tpgn_channels_are_independent_and_norm_makes_it_scale_equivariant():
    torch.manual_seed(0)
    model = TPGN(input_len=72, horizon=30, n_channels=2, n_time_features=4, period=24, d_model=4).double()
    x = torch.randn(3, 72, 2, dtype=torch.float64)
    x_mark, y_mark = torch.rand(3, 72, 4, dtype=torch.float64) - 0.5, torch.zeros(3, 30, 4, dtype=torch.float64)
    y = model(x, x_mark, y_mark)
    moved = x.clone()
    moved[:, :, 1] += torch.randn(3, 72, dtype=torch.float64)
    y_moved = model(moved, x_mark, y_mark)
    assert torch.equal(y_moved[..., 0], y[..., 0]) and not torch.allclose(y_moved[..., 1], y[..., 1])
    scaled = model(50 * x + 7, x_mark, y_mark)  # standardised inputs are the same, so the forecast maps along
    torch.testing.assert_close(scaled, 50 * y + 7, rtol=1e-4, atol=1e-3)  # up to the eps in the std
    raw = TPGN(input_len=72, horizon=30, n_channels=2, n_time_features=4, period=24, d_model=4, norm=False).double()
    assert not torch.allclose(raw(50 * x + 7, x_mark, y_mark), 50 * raw(x, x_mark, y_mark) + 7)


def test_tpgn_errors():
    with pytest.raises(ValueError, match=r"the period \(25\) must divide input_len \(168\)"):
        TPGN(168, 24, period=25)
    with pytest.raises(ValueError, match="at least two periods"):
        TPGN(24, 24, period=24)
    model = TPGN(48, 24, n_channels=1, period=24)
    with pytest.raises(ValueError, match=r"x_mark must have shape \[2, 48, 4\]"):
        model(torch.zeros(2, 48, 1), torch.zeros(2, 48, 3), torch.zeros(2, 24, 4))
