"""A Transformer-decoder text-to-speech model of Lina-Speech's size: the baseline of ``lrnn bench speech_throughput``.

Lina-Speech with its GLA blocks and blind cross-attention replaced by a standard pre-norm Transformer decoder (as in
MusicGen): the same text encoder, codebook embeddings, final LayerNorm and per-codebook heads, and ``num_layers``
blocks over the audio stream ``x [B, S, d]`` (the sum of the codebook embeddings plus sinusoidal positions)::

    x = x + SelfAttention(LN(x))        causal, multi-head; keys and values cached while decoding
    x = x + CrossAttention(LN(x), t)    queries from the audio, keys and values from the text t [B, L, d]
    x = x + SwiGLU(LN(x))               Lina's feed-forward (hidden 4d/3)

At d = 1024 a block has 12.59M weights against a Lina GLA block's 12.64M; with 12 blocks (Lina-Speech's 6 + 6) the
model has 203.8M parameters against Lina-Speech's 207.7M, 1.9% fewer (Lina also has its blind cross-attention).

Decoding keeps, per block, the self-attention keys and values of every step in buffers of ``capacity`` steps that
``prefill`` allocates (a static cache: ``2 num_layers B capacity d`` elements; a step attends over the filled part,
so its time grows with the length), and the text's keys and values (fixed). Every item of a batch is at the same
step (prompts of equal length); ``step`` checks shapes only, so decoding never waits on the device.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .model.swiglu import SwiGLU
from .model.text_encoder import TextEncoder
from .special_tokens import N_SPECIAL
from .text import VOCAB_SIZE


def sinusoidal_positions(start: int, length: int, dim: int, device: torch.device) -> torch.Tensor:
    """``[length, dim]``: ``[sin(p w_i), cos(p w_i)]`` for positions ``p = start .. start + length - 1`` and
    ``w_i = 10000^(-2i / dim)``, ``i < dim / 2`` (``dim`` even)."""
    frequencies = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    angle = torch.arange(start, start + length, device=device, dtype=torch.float32)[:, None] * frequencies
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class TransformerCache(NamedTuple):
    """What ``step`` carries. Per block: ``keys``, ``values [B, H, capacity, D]`` (steps ``< length`` filled),
    ``text_keys``, ``text_values [B, H, L, D]``; and ``text_mask [B, L]`` (True = token), ``length`` (filled steps).
    ``step`` writes into the buffers in place: the cache it returns replaces the one it was given."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    text_keys: list[torch.Tensor]
    text_values: list[torch.Tensor]
    text_mask: torch.Tensor
    length: int


class DecoderBlock(nn.Module):
    """Pre-norm decoder block (module docstring) over ``x [B, S, d]`` with ``num_heads`` heads of ``d / num_heads``."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.self_norm = nn.LayerNorm(d_model)
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.self_out = nn.Linear(d_model, d_model, bias=False)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_query = nn.Linear(d_model, d_model, bias=False)
        self.cross_kv = nn.Linear(d_model, 2 * d_model, bias=False)
        self.cross_out = nn.Linear(d_model, d_model, bias=False)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = SwiGLU(d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, S, H D]`` -> ``[B, H, S, D]``."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def text_keys_values(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``text [B, L, d]`` (the text encoder's output) -> cross-attention ``keys, values [B, H, L, D]``."""
        keys, values = self.cross_kv(text).chunk(2, dim=-1)
        return self._heads(keys), self._heads(values)

    def forward(
        self,
        x: torch.Tensor,
        text_keys: torch.Tensor,
        text_values: torch.Tensor,
        text_mask: torch.Tensor,
        buffers: tuple[torch.Tensor, torch.Tensor] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """``x [B, S, d]`` at steps ``start .. start + S - 1`` -> ``[B, S, d]``. With ``buffers`` (keys, values
        ``[B, H, capacity, D]`` filled below ``start``) the new keys and values are written at those steps and the
        queries attend over every filled step; ``start`` must be 0 or ``S`` 1 (a prefill or a decoding step)."""
        steps = x.shape[1]
        q, k, v = (self._heads(part) for part in self.qkv_proj(self.self_norm(x)).chunk(3, dim=-1))
        if buffers is not None:
            key_buffer, value_buffer = buffers
            key_buffer[:, :, start : start + steps] = k
            value_buffer[:, :, start : start + steps] = v
            k, v = key_buffer[:, :, : start + steps], value_buffer[:, :, : start + steps]
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=steps > 1)
        x = x + self.self_out(attended.transpose(1, 2).flatten(-2))
        q = self._heads(self.cross_query(self.cross_norm(x)))
        attended = F.scaled_dot_product_attention(q, text_keys, text_values, attn_mask=text_mask[:, None, None, :])
        x = x + self.cross_out(attended.transpose(1, 2).flatten(-2))
        return x + self.mlp(self.mlp_norm(x))


class TransformerTTS(nn.Module):
    """Transformer-decoder language model over ``q`` codebooks of ``codebook_size`` codes, the arguments and token
    layout of ``LinaSpeech`` (``audio [B, S, q]`` in its delay layout, ids shifted by ``N_SPECIAL``).

    Args:
        codebook_size, num_codebooks, d_model, text_layers, text_heads, text_vocab_size: as ``LinaSpeech``'s.
        num_layers: decoder blocks (Lina-Speech's depth: ``2 num_layers`` of its own).
        num_heads: heads of the self- and cross-attention (``d_model / num_heads`` channels each).
    """

    def __init__(
        self,
        codebook_size: int,
        num_codebooks: int = 1,
        d_model: int = 1024,
        num_layers: int = 12,
        num_heads: int = 16,
        text_layers: int = 6,
        text_heads: int = 4,
        text_vocab_size: int = VOCAB_SIZE,
    ) -> None:
        super().__init__()
        if d_model % num_heads or (d_model // num_heads) % 2:
            raise ValueError(f"d_model = {d_model} must split into num_heads = {num_heads} heads of even size")
        self.num_codebooks = num_codebooks
        self.vocab_size = codebook_size + N_SPECIAL
        self.text_encoder = TextEncoder(d_model, text_layers, text_heads, text_vocab_size)
        self.embeddings = nn.ModuleList(nn.Embedding(self.vocab_size, d_model) for _ in range(num_codebooks))
        self.blocks = nn.ModuleList(DecoderBlock(d_model, num_heads) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_codebooks * self.vocab_size, bias=False)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``text [B, L]``, ``text_mask [B, L]`` (bool), ``audio [B, S, q]`` -> ``logits [B, S, q, V]`` for the next
        step, causal over the ``S`` steps (no cache)."""
        self._check_audio(audio)
        text_keys, text_values = self._text_keys_values(text, text_mask)
        x = self._embed(audio, 0)
        for block, keys, values in zip(self.blocks, text_keys, text_values, strict=True):
            x = block(x, keys, values, text_mask)
        return self._logits(x)

    def prefill(
        self, text: torch.Tensor, text_mask: torch.Tensor, audio: torch.Tensor, capacity: int
    ) -> tuple[torch.Tensor, TransformerCache]:
        """Encode the text, run ``audio [B, P, q]`` (``P >= 1``: BOS and the prompt) in parallel and cache it in
        buffers of ``capacity >= P`` steps -> ``(logits [B, q, V]`` for step ``P``, the cache)."""
        self._check_audio(audio)
        batch, steps = audio.shape[:2]
        if steps < 1 or capacity < steps:
            raise ValueError(f"need 1 <= P <= capacity, got P = {steps} (audio {tuple(audio.shape)}), {capacity = }")
        text_keys, text_values = self._text_keys_values(text, text_mask)
        x = self._embed(audio, 0)
        keys, values = [], []
        for block, block_keys, block_values in zip(self.blocks, text_keys, text_values, strict=True):
            heads, head_dim = block_keys.shape[1], block_keys.shape[3]
            buffers = tuple(block_keys.new_empty(batch, heads, capacity, head_dim) for _ in range(2))
            x = block(x, block_keys, block_values, text_mask, buffers, 0)
            keys.append(buffers[0])
            values.append(buffers[1])
        return self._logits(x[:, -1]), TransformerCache(keys, values, text_keys, text_values, text_mask, steps)

    def step(self, tokens: torch.Tensor, cache: TransformerCache) -> tuple[torch.Tensor, TransformerCache]:
        """``tokens [B, q]`` (the next step of the delay layout) -> ``(logits [B, q, V]`` for the step after, the
        cache one step longer)."""
        batch, capacity = cache.keys[0].shape[0], cache.keys[0].shape[2]
        if tokens.shape != (batch, self.num_codebooks):
            raise ValueError(f"tokens must be [B = {batch}, q = {self.num_codebooks}], got {tuple(tokens.shape)}")
        if cache.length >= capacity:
            raise ValueError(f"the cache is full: {cache.length} of {capacity} steps (give prefill more capacity)")
        x = self._embed(tokens[:, None], cache.length)
        layers = zip(self.blocks, cache.keys, cache.values, cache.text_keys, cache.text_values, strict=True)
        for block, keys, values, text_keys, text_values in layers:
            x = block(x, text_keys, text_values, cache.text_mask, (keys, values), cache.length)
        return self._logits(x[:, 0]), cache._replace(length=cache.length + 1)

    def _text_keys_values(
        self, text: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The text encoded once, then each block's cross-attention keys and values ``[B, H, L, D]``."""
        encoded = self.text_encoder(text, text_mask)
        pairs = [block.text_keys_values(encoded) for block in self.blocks]
        return [keys for keys, _ in pairs], [values for _, values in pairs]

    def _embed(self, audio: torch.Tensor, start: int) -> torch.Tensor:
        """``[B, S, q]`` tokens at steps ``start ..`` -> ``[B, S, d]``: codebook embeddings summed, plus positions."""
        x = sum(embedding(audio[..., level]) for level, embedding in enumerate(self.embeddings))
        return x + sinusoidal_positions(start, audio.shape[1], x.shape[-1], x.device).to(x.dtype)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d]`` -> ``[..., q, V]``."""
        return self.head(self.final_norm(x)).unflatten(-1, (self.num_codebooks, self.vocab_size))

    def _check_audio(self, audio: torch.Tensor) -> None:
        if audio.ndim != 3 or audio.shape[2] != self.num_codebooks:
            raise ValueError(f"audio tokens must be [B, S, q = {self.num_codebooks}], got {tuple(audio.shape)}")
        if audio.numel() and (int(audio.min()) < 0 or int(audio.max()) >= self.vocab_size):
            raise ValueError(f"audio tokens must lie in [0, {self.vocab_size}), got [{audio.min()}, {audio.max()}]")
