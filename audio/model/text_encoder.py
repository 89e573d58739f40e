"""Lina-Speech's text encoder: non-causal pre-LayerNorm Transformer blocks with rotary positions over text tokens.

Each block is ``x = x + SelfAttention(LN(x)); x = x + SwiGLU(LN(x))``, then dropout. The attention rotates queries
and keys by their position (RoPE, ``theta_i = base^(-2i/D)`` over the pairs of each head's ``D`` channels) and
ignores padded keys. The output has no final norm: the cross-attention normalises its keys and values itself.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..special_tokens import PAD
from ..text import VOCAB_SIZE
from .swiglu import SwiGLU


def rotate_positions(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE on ``x [B, H, L, D]`` (``D`` even): channel pairs ``(i, i + D/2)`` turn by ``position * theta_i``."""
    length, dim = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
    angle = torch.arange(length, device=x.device, dtype=torch.float32)[:, None] * theta
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with RoPE over ``x [B, L, d]``; ``mask [B, L]`` (True = token) hides padded keys."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads or (d_model // num_heads) % 2:
            raise ValueError(f"d_model = {d_model} must split into num_heads = {num_heads} heads of even size")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_proj(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            rotate_positions(q), rotate_positions(k), v, attn_mask=mask[:, None, None, :], dropout_p=dropout
        )
        return self.out_proj(y.transpose(1, 2).flatten(-2))


class TextEncoderBlock(nn.Module):
    """``x = x + SA(LN(x)); x = x + SwiGLU(LN(x)); dropout`` over ``x [B, L, d]``."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, num_heads, dropout)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = SwiGLU(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), mask)
        return self.dropout(x + self.mlp(self.mlp_norm(x)))


class TextEncoder(nn.Module):
    """``tokens [B, L]`` (int, ``PAD`` = 0 after each text) and ``mask [B, L]`` (bool, True = token) ->
    ``[B, L, d]``. The embedding of ``PAD`` is zero (``padding_idx``)."""

    def __init__(
        self, d_model: int, num_layers: int, num_heads: int, vocab_size: int = VOCAB_SIZE, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.blocks = nn.ModuleList(TextEncoderBlock(d_model, num_heads, dropout) for _ in range(num_layers))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or mask.shape != tokens.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"tokens must be [B, L] with a bool mask of the same shape, got {tuple(tokens.shape)} and "
                f"{tuple(mask.shape)} {mask.dtype}"
            )
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every text needs at least one token (a row of mask is all False)")
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return x
