"""RWKV channel mixing (Vision-RWKV's, as LION's RWKV blocks use it) against a float64 loop over the tokens."""

import pytest
import torch
from lrnn.core.mixers.rwkv_channel_mix import RWKVChannelMix


def channel_mix_loop(mix: RWKVChannelMix, x: torch.Tensor) -> torch.Tensor:
    """One token at a time: ``dx = x_{t-1} - x_t`` (zero previous token at ``t = 0``), Vision-RWKV's mixing."""
    outputs = []
    for t in range(x.shape[1]):
        previous = x[:, t - 1] if t > 0 else torch.zeros_like(x[:, 0])
        dx = previous - x[:, t]
        x_k = x[:, t] * mix.mix_k + dx * (1 - mix.mix_k)
        x_r = x[:, t] * mix.mix_r + dx * (1 - mix.mix_r)
        hidden = torch.relu(x_k @ mix.key.weight.T) ** 2
        outputs.append(torch.sigmoid(x_r @ mix.receptance.weight.T) * (hidden @ mix.value.weight.T))
    return torch.stack(outputs, 1)


def test_against_a_float64_loop_with_gradients():
    torch.manual_seed(0)
    mix = RWKVChannelMix(12, hidden_rate=2, layer_idx=1, num_layers=3).double()
    x = torch.randn(3, 9, 12, dtype=torch.float64, requires_grad=True)
    y = mix(x)
    torch.testing.assert_close(y, channel_mix_loop(mix, x))
    grads = torch.autograd.grad(y.square().sum(), [x, *mix.parameters()])
    expected = torch.autograd.grad(channel_mix_loop(mix, x).square().sum(), [x, *mix.parameters()])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)
    assert all(g.abs().sum() > 0 for g in grads)


def test_fancy_initialisation():
    """``mu_k = mu_r = (i / C)^(1 - l / n)``: from 0 up at the first layer, flatter in later ones."""
    first, last = RWKVChannelMix(8, layer_idx=0, num_layers=4), RWKVChannelMix(8, layer_idx=3, num_layers=4)
    torch.testing.assert_close(first.mix_k, torch.arange(8.0) / 8)
    torch.testing.assert_close(last.mix_r, (torch.arange(8.0) / 8) ** 0.25)
    assert first.key.weight.shape == (32, 8) and first.value.weight.shape == (8, 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(layer_idx=4, num_layers=4), "layer_idx"),
        (dict(hidden_rate=0), "hidden_rate"),
        (dict(num_layers=0), "num_layers"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RWKVChannelMix(8, **kwargs)
