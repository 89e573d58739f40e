"""Text encoder, GLA block and blind cross-attention: shapes, padding invariance, parallel form == step form."""

import pytest
import torch
from lrnn.audio.model import BlindCrossAttention, GLABlock, TextEncoder


def test_text_encoder_ignores_padding():
    """A text encodes the same alone and padded in a batch; a text with no token is refused."""
    torch.manual_seed(0)
    encoder = TextEncoder(d_model=32, num_layers=2, num_heads=2).eval()
    tokens = torch.randint(3, 200, (1, 9))
    padded = torch.cat([tokens, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.arange(13)[None] < 9
    alone = encoder(tokens, torch.ones(1, 9, dtype=torch.bool))
    assert alone.shape == (1, 9, 32)
    torch.testing.assert_close(encoder(padded, mask)[:, :9], alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="at least one token"):
        encoder(padded, torch.zeros(1, 13, dtype=torch.bool))


def test_gla_block_step_matches_forward_and_zero_initial_state_is_no_state():
    torch.manual_seed(0)
    block = GLABlock(d_model=32, num_heads=2).eval()
    x = torch.randn(2, 10, 32)
    y, _ = block(x)
    state, steps = None, []
    for t in range(10):
        y_t, state = block.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, dim=1), y, rtol=1e-5, atol=1e-5)
    zero = block.initial_state(torch.zeros(2, *block.state_shape))
    torch.testing.assert_close(block(x, zero)[0], y)


def test_blind_cross_attention_step_matches_forward_and_ignores_text_padding():
    torch.manual_seed(0)
    attention = BlindCrossAttention(d_model=32, position_dim=16, max_positions=64).eval()
    text = torch.randn(2, 12, 32)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    x = torch.randn(2, 8, 32)
    memory = attention.memory(text, mask)
    y, _ = attention(x, memory)
    state, steps = None, []
    for t in range(8):
        y_t, state = attention.step(x[:, t], memory, state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, dim=1), y, rtol=1e-5, atol=1e-5)
    alone, _ = attention(x[1:], attention.memory(text[1:, :7], mask[1:, :7]))
    torch.testing.assert_close(y[1:], alone, rtol=1e-5, atol=1e-5)
