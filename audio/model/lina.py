"""Lina-Speech (Lemerle et al., 2024): a GLA language model over codec tokens, conditioned on text by blind
cross-attention.

    text [B, L] -> TextEncoder -> t [B, L, d]
    audio [B, S, q] (Lina's delay layout, ``lina_delay``) -> sum of q codebook embeddings -> x [B, S, d]
    x -> encoder GLA blocks -> x + BlindCrossAttention(x, t) -> decoder GLA blocks -> LayerNorm
      -> one linear head per codebook -> logits [B, S, q, codebook_size + 3]

Training is teacher forcing: the input is ``audio[:, :-1]``, the target ``audio[:, 1:]``, and targets equal to
``PAD`` or ``BOS`` (padding and the delay's fill) are ignored. Generation steps every GLA block and the cross-
attention's ``pos_net`` with their cached states: top-k sampling on the first codebook, greedy on the others.
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ...core.mixers.gla import GLAState
from ..delay import lina_undelay
from ..special_tokens import BOS, EOS, N_SPECIAL, PAD
from ..text import VOCAB_SIZE
from .blocks import GLABlock
from .cross_attention import BlindCrossAttention, TextMemory
from .text_encoder import TextEncoder


class LinaCache(NamedTuple):
    """What ``step`` carries: the fixed ``memory`` of the text, and the states of the encoder GLA blocks, the
    cross-attention's ``pos_net`` and the decoder GLA blocks (None before the first step)."""

    memory: TextMemory
    encoder_states: list[GLAState | None]
    pos_net_state: GLAState | None
    decoder_states: list[GLAState | None]


class LinaSpeech(nn.Module):
    """Text-to-speech language model over ``q`` codebooks of ``codebook_size`` codes.

    Args:
        codebook_size: codes per codebook; the token vocabulary is ``codebook_size + 3`` (``PAD``, ``BOS``, ``EOS``).
        num_codebooks: ``q``.
        d_model: channels ``d``.
        num_layers: GLA blocks in each of the encoder and decoder stacks (``2 num_layers`` in all).
        num_heads: heads of those GLA blocks.
        text_layers, text_heads: of the text encoder.
        position_dim, pos_net_heads, max_text_positions: of the blind cross-attention.
        text_vocab_size: text token ids (bytes + 3 by default).
        dropout: after every block and on the attention weights, while training.
    """

    def __init__(
        self,
        codebook_size: int,
        num_codebooks: int = 1,
        d_model: int = 1024,
        num_layers: int = 6,
        num_heads: int = 4,
        text_layers: int = 6,
        text_heads: int = 4,
        position_dim: int = 64,
        pos_net_heads: int = 1,
        max_text_positions: int = 2000,
        text_vocab_size: int = VOCAB_SIZE,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_codebooks = num_codebooks
        self.vocab_size = codebook_size + N_SPECIAL
        self.text_encoder = TextEncoder(d_model, text_layers, text_heads, text_vocab_size, dropout)
        self.embeddings = nn.ModuleList(nn.Embedding(self.vocab_size, d_model) for _ in range(num_codebooks))
        self.encoder = nn.ModuleList(GLABlock(d_model, num_heads, dropout) for _ in range(num_layers))
        self.cross_attention = BlindCrossAttention(
            d_model, position_dim, pos_net_heads, max_text_positions, dropout=dropout
        )
        self.decoder = nn.ModuleList(GLABlock(d_model, num_heads, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_codebooks * self.vocab_size, bias=False)

    @property
    def gla_blocks(self) -> list[GLABlock]:
        """The encoder then the decoder GLA blocks: the layers whose initial states voice cloning tunes."""
        return [*self.encoder, *self.decoder]

    def forward(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        audio: torch.Tensor,
        initial_states: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``text [B, L]``, ``text_mask [B, L]`` (bool), ``audio [B, S, q]`` -> ``logits [B, S, q, V]`` for the next
        step. ``initial_states``: one recurrent state ``[H, K, V]`` per ``gla_blocks`` layer (a voice), or None."""
        self._check_audio(audio)
        memory = self.cross_attention.memory(self.text_encoder(text, text_mask), text_mask)
        encoder_states, decoder_states = self._layer_states(initial_states, audio.shape[0])
        x = self._embed(audio)
        for block, state in zip(self.encoder, encoder_states, strict=True):
            x, _ = block(x, state)
        attended, _ = self.cross_attention(x, memory)
        x = x + attended
        for block, state in zip(self.decoder, decoder_states, strict=True):
            x, _ = block(x, state)
        return self._logits(x)

    def loss(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        audio: torch.Tensor,
        initial_states: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over the steps and codebooks of ``audio [B, S, q]`` whose target is
        neither ``PAD`` nor ``BOS``."""
        logits = self(text, text_mask, audio[:, :-1], initial_states)
        target = audio[:, 1:].masked_fill((audio[:, 1:] == PAD) | (audio[:, 1:] == BOS), -100)
        return F.cross_entropy(logits.flatten(0, 2), target.flatten(), ignore_index=-100)

    def init_cache(
        self, text: torch.Tensor, text_mask: torch.Tensor, initial_states: Sequence[torch.Tensor] | None = None
    ) -> LinaCache:
        """Encode the text once and start every recurrent state (from ``initial_states`` when given)."""
        memory = self.cross_attention.memory(self.text_encoder(text, text_mask), text_mask)
        encoder_states, decoder_states = self._layer_states(initial_states, text.shape[0])
        return LinaCache(memory, encoder_states, None, decoder_states)

    def step(self, tokens: torch.Tensor, cache: LinaCache) -> tuple[torch.Tensor, LinaCache]:
        """``tokens [B, q]`` (one step of the delay layout) -> ``(logits [B, q, V]`` for the next step, next cache)."""
        self._check_audio(tokens[:, None])
        x = self._embed(tokens)
        encoder_states = []
        for block, state in zip(self.encoder, cache.encoder_states, strict=True):
            x, state = block.step(x, state)
            encoder_states.append(state)
        attended, pos_net_state = self.cross_attention.step(x, cache.memory, cache.pos_net_state)
        x = x + attended
        decoder_states = []
        for block, state in zip(self.decoder, cache.decoder_states, strict=True):
            x, state = block.step(x, state)
            decoder_states.append(state)
        return self._logits(x), LinaCache(cache.memory, encoder_states, pos_net_state, decoder_states)

    @torch.no_grad()
    def generate(
        self,
        text: Sequence[torch.Tensor],
        max_frames: int,
        top_k: int = 100,
        temperature: float = 1.0,
        prompt: Sequence[torch.Tensor] | None = None,
        initial_states: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> list[torch.Tensor]:
        """Synthesise codec codes for each text: ``text`` a list of ``[L_b]`` token tensors (BOS .. EOS) ->
        a list of ``codes [q, T_b]`` (codec indices, ``T_b <= max_frames``).

        Step ``s`` emits column ``s`` of the delay layout: codebook 0 is drawn from the ``top_k`` most likely codes
        or EOS at ``temperature``, the other codebooks are the most likely code. ``PAD`` and ``BOS`` are never drawn
        (the loss ignores them, so their logits are untrained); the delay's BOS fill is forced. A clip ends when
        codebook 0 emits EOS (or after ``max_frames`` frames); codebook ``i`` then emits EOS ``i`` steps later, as
        ``lina_delay`` lays it out, and the clip's tokens are undelayed. ``prompt``: per item ``codes [q, P_b]``
        (or ``[q, 0]``) forced as the first frames, which are returned too. ``generator``: one for the batch, or one
        per item, so that each item draws what it would alone.
        """
        batch, q = len(text), self.num_codebooks
        device = self.head.weight.device
        self._check_generate_args(text, max_frames, top_k, temperature, prompt, generator)
        tokens = pad_sequence([t.to(device) for t in text], batch_first=True, padding_value=PAD)
        mask = pad_sequence([torch.ones(len(t), dtype=torch.bool, device=device) for t in text], batch_first=True)
        cache = self.init_cache(tokens, mask, initial_states)
        forced = self._forced_tokens(batch, max_frames, prompt, device)
        columns = [torch.full((batch, q), BOS, dtype=torch.long, device=device)]
        end = torch.zeros(batch, dtype=torch.long, device=device)
        for s in range(1, max_frames + q + 1):
            logits, cache = self.step(columns[-1], cache)
            column = self._pick(logits, top_k, temperature, generator)
            column = torch.where(forced[:, :, s] >= 0, forced[:, :, s], column)
            if s == max_frames + 1:
                column[:, 0] = EOS
            ended = end > 0
            after_end = (s - end[:, None] >= torch.arange(q, device=device)) & ended[:, None]
            column = column.masked_fill(after_end, EOS)
            end = torch.where(~ended & (column[:, 0] == EOS), s, end)
            columns.append(column)
            if bool((end > 0).all()) and s >= int(end.max()) + q - 1:
                break
        layout = torch.stack(columns, dim=2)
        return [lina_undelay(layout[b, :, : int(end[b]) + q]) for b in range(batch)]

    def _pick(
        self,
        logits: torch.Tensor,
        top_k: int,
        temperature: float,
        generator: torch.Generator | Sequence[torch.Generator] | None,
    ) -> torch.Tensor:
        """``logits [B, q, V]`` -> ``[B, q]``: top-k sampling on codebook 0, greedy (EOS excluded) on the rest."""
        logits = logits.clone()
        logits[..., PAD] = logits[..., BOS] = -torch.inf
        logits[:, 1:, EOS] = -torch.inf
        column = logits.argmax(dim=-1)
        top_logits, top_ids = (logits[:, 0] / temperature).topk(min(top_k, self.vocab_size), dim=-1)
        probs = top_logits.softmax(dim=-1)
        if isinstance(generator, Sequence):
            draws = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generator, strict=True)])
        else:
            draws = torch.multinomial(probs, 1, generator=generator)[:, 0]
        column[:, 0] = top_ids.gather(1, draws[:, None])[:, 0]
        return column

    def _forced_tokens(
        self, batch: int, max_frames: int, prompt: Sequence[torch.Tensor] | None, device: torch.device
    ) -> torch.Tensor:
        """``[B, q, max_frames + q + 1]``: the token forced at each column (the delay's BOS fill, the prompt), or -1."""
        q = self.num_codebooks
        forced = torch.full((batch, q, max_frames + q + 1), -1, dtype=torch.long, device=device)
        for level in range(q):
            forced[:, level, 1 : level + 1] = BOS
            for b in range(batch if prompt is not None else 0):
                frames = prompt[b].shape[1]
                forced[b, level, level + 1 : level + 1 + frames] = prompt[b][level].to(device).long() + N_SPECIAL
        return forced

    def _check_generate_args(self, text, max_frames, top_k, temperature, prompt, generator) -> None:
        if len(text) == 0 or any(t.ndim != 1 or len(t) == 0 for t in text):
            raise ValueError("text must be a non-empty list of non-empty [L] token tensors")
        if max_frames < 1 or top_k < 1 or not temperature > 0:
            raise ValueError(
                f"need max_frames >= 1, top_k >= 1, temperature > 0; got {max_frames}, {top_k}, {temperature}"
            )
        if prompt is not None:
            if len(prompt) != len(text):
                raise ValueError(f"prompt must hold one [q, P] tensor per text, got {len(prompt)} for {len(text)}")
            for codes in prompt:
                if codes.ndim != 2 or codes.shape[0] != self.num_codebooks or codes.shape[1] > max_frames:
                    raise ValueError(
                        f"each prompt must be [q = {self.num_codebooks}, P <= max_frames = {max_frames}], "
                        f"got {tuple(codes.shape)}"
                    )
        if isinstance(generator, Sequence) and len(generator) != len(text):
            raise ValueError(f"generator must be one or one per text, got {len(generator)} for {len(text)}")

    def _check_audio(self, audio: torch.Tensor) -> None:
        if audio.ndim != 3 or audio.shape[2] != self.num_codebooks:
            raise ValueError(f"audio tokens must be [B, S, q = {self.num_codebooks}], got {tuple(audio.shape)}")
        if audio.numel() and (int(audio.min()) < 0 or int(audio.max()) >= self.vocab_size):
            raise ValueError(f"audio tokens must lie in [0, {self.vocab_size}), got [{audio.min()}, {audio.max()}]")

    def _embed(self, audio: torch.Tensor) -> torch.Tensor:
        """``[..., q]`` tokens -> ``[..., d]``, the sum of the q codebook embeddings."""
        return sum(embedding(audio[..., level]) for level, embedding in enumerate(self.embeddings))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d]`` -> ``[..., q, V]``."""
        return self.head(self.final_norm(x)).unflatten(-1, (self.num_codebooks, self.vocab_size))

    def _layer_states(
        self, initial_states: Sequence[torch.Tensor] | None, batch: int
    ) -> tuple[list[GLAState | None], list[GLAState | None]]:
        """Per encoder and decoder block, the ``GLAState`` starting from its ``[H, K, V]`` initial state, or None."""
        blocks = self.gla_blocks
        if initial_states is None:
            return [None] * len(self.encoder), [None] * len(self.decoder)
        if len(initial_states) != len(blocks):
            raise ValueError(
                f"initial_states must hold {len(blocks)} states (one per GLA block), got {len(initial_states)}"
            )
        states = []
        for block, recurrent in zip(blocks, initial_states, strict=True):
            if tuple(recurrent.shape) != block.state_shape:
                raise ValueError(f"an initial state must be {list(block.state_shape)}, got {tuple(recurrent.shape)}")
            states.append(block.initial_state(recurrent.expand(batch, *block.state_shape)))
        return states[: len(self.encoder)], states[len(self.encoder) :]
