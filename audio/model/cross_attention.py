"""Lina-Speech's position-aware "blind" cross-attention from the audio stream ``x [B, S, d]`` to the text
``t [B, L, d]``.

With ``P [B, L, p]`` the text-position embeddings (``ConvPos``) and one head::

    a = softmax(LN(W_q x) LN(W_k t)^T / sqrt(d)) P     [B, S, p]  the expected text position of each audio step
    u = pos_net(a)                                    [B, S, p]  a causal GLA block over the audio steps
    y = softmax(u P^T / sqrt(p)) LN(W_v t)             [B, S, d]  the text values at the position u points to

The first attention only sees *where* in the text each step attends (its values are positions, not content); the
recurrent ``pos_net`` can learn a monotonic progress through the text; the second attention turns that position back
into text content. Padded text positions are masked as keys in both attentions. The text side (``TextMemory``) is
fixed for an utterance, so ``step`` needs only the current audio step and the ``pos_net`` state.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...core.mixers.gla import GLAState
from .blocks import GLABlock


class ConvPos(nn.Module):
    """Learned text-position embeddings through a depthwise conv: ``mask [B, L]`` -> ``P [B, L, p]``.

    ``P = DepthwiseConv1d_k(E[0..L-1])`` with ``E`` a table of ``max_positions`` rows and 'same' padding (``k`` odd).
    Embeddings of padded positions are zeroed before the conv, so a text's ``P`` does not depend on the padding of
    its batch (Lina-Speech convolves the padded positions' embeddings too).
    """

    def __init__(self, dim: int, max_positions: int = 2000, kernel_size: int = 31) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.embedding = nn.Embedding(max_positions, dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        length = mask.shape[1]
        if length > self.embedding.num_embeddings:
            raise ValueError(f"text of {length} tokens exceeds max_positions = {self.embedding.num_embeddings}")
        positions = self.embedding(torch.arange(length, device=mask.device)) * mask[..., None]
        return self.conv(positions.transpose(1, 2)).transpose(1, 2)


class TextMemory(NamedTuple):
    """The text side of one batch: ``keys [B, L, d]`` = LN(W_k t), ``positions [B, L, p]`` = P,
    ``values [B, L, d]`` = LN(W_v t), ``mask [B, L]`` (True = token)."""

    keys: torch.Tensor
    positions: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor


class BlindCrossAttention(nn.Module):
    """Two-step position-aware cross-attention (module docstring), output ``[B, S, d]`` to add to the audio stream.

    Args:
        d_model: channels ``d`` of the audio stream and of the text encoding.
        position_dim: channels ``p`` of the position embeddings and of ``pos_net`` (Lina-Speech: 64).
        pos_net_heads: heads of the ``pos_net`` GLA block.
        max_positions, kernel_size: of ``ConvPos``.
        dropout: on the attention weights while training.
    """

    def __init__(
        self,
        d_model: int,
        position_dim: int = 64,
        pos_net_heads: int = 1,
        max_positions: int = 2000,
        kernel_size: int = 31,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.query_proj = nn.Linear(d_model, d_model)
        self.key_proj = nn.Linear(d_model, d_model)
        self.value_proj = nn.Linear(d_model, d_model)
        self.query_norm = nn.LayerNorm(d_model)
        self.key_norm = nn.LayerNorm(d_model)
        self.value_norm = nn.LayerNorm(d_model)
        self.positions = ConvPos(position_dim, max_positions, kernel_size)
        self.pos_net = GLABlock(position_dim, pos_net_heads, dropout)
        self.dropout = dropout

    def memory(self, text: torch.Tensor, mask: torch.Tensor) -> TextMemory:
        """``text [B, L, d]`` (the encoder's output), ``mask [B, L]`` -> the fixed ``TextMemory``."""
        keys = self.key_norm(self.key_proj(text))
        values = self.value_norm(self.value_proj(text))
        return TextMemory(keys, self.positions(mask), values, mask)

    def forward(
        self, x: torch.Tensor, memory: TextMemory, state: GLAState | None = None
    ) -> tuple[torch.Tensor, GLAState]:
        """``x [B, S, d]`` -> ``(y [B, S, d], pos_net state after step S)``."""
        mask = memory.mask[:, None, :]
        dropout = self.dropout if self.training else 0.0
        queries = self.query_norm(self.query_proj(x))
        expected_position = F.scaled_dot_product_attention(
            queries, memory.keys, memory.positions, attn_mask=mask, dropout_p=dropout
        )
        progress, state = self.pos_net(expected_position, state)
        y = F.scaled_dot_product_attention(progress, memory.positions, memory.values, attn_mask=mask, dropout_p=dropout)
        return y, state

    def step(
        self, x_t: torch.Tensor, memory: TextMemory, state: GLAState | None = None
    ) -> tuple[torch.Tensor, GLAState]:
        """``x_t [B, d]`` -> ``(y_t [B, d], next pos_net state)``."""
        mask = memory.mask[:, None, :]
        queries = self.query_norm(self.query_proj(x_t))[:, None]
        expected_position = F.scaled_dot_product_attention(queries, memory.keys, memory.positions, attn_mask=mask)
        progress, state = self.pos_net.step(expected_position[:, 0], state)
        y = F.scaled_dot_product_attention(progress[:, None], memory.positions, memory.values, attn_mask=mask)
        return y[:, 0], state
