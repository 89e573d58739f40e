"""Initial-state tuning (Lina-Speech's voice cloning): learn a ``VoiceState`` for a trained, frozen model.

The loop of the authors' ``initial_state.py``: the model is frozen (``requires_grad_(False)``) and kept in
``train()`` mode (dropout on); each epoch draws the speaker's clips without replacement in batches of
``batch_size``, the next-token cross-entropy ``LinaSpeech.loss(..., voice.initial_states())`` of each batch is
divided by ``accumulation`` and back-propagated into the voice's factors only, and Adam (lr 0.1) steps every
``accumulation`` batches (and after the epoch's last). Defaults: batch 2, accumulation 4, one epoch.

A voice fits one model only: ``check_voice`` (run by ``tune_voice`` and ``load_voice``) raises when its layers or
state shapes differ from the model's GLA blocks.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch.utils.data import DataLoader

from .data import collate_speech
from .model.lina import LinaSpeech
from .model.voice_state import VoiceState
from .special_tokens import PAD


def check_voice(voice: VoiceState, model: LinaSpeech, source: str = "the voice") -> None:
    """Raise ``ValueError`` unless ``voice`` has one ``[H, K, V]`` state per GLA block of ``model``, of its shape."""
    expected = [block.state_shape for block in model.gla_blocks]
    found = [tuple(state.shape) for state in voice.initial_states()]
    if found != expected:
        raise ValueError(
            f"{source} holds {len(found)} states of shapes {found}, the model {len(expected)} of shapes {expected}:"
            " it was tuned for another model; tune a voice for this one (tune_voice)"
        )


def load_voice(path: str | Path, model: LinaSpeech) -> VoiceState:
    """The ``VoiceState`` saved at ``path`` (``VoiceState.save``), checked against ``model`` and on its device."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no voice at {str(path)!r}: give the safetensors file that tune_voice saved")
    try:
        voice = VoiceState.load(path)
    except (LookupError, TypeError, SafetensorError) as error:
        raise ValueError(
            f"{str(path)!r} is not a voice that VoiceState.save wrote (it needs layer<l>_k/_v factors and a scale):"
            f" {error}"
        ) from error
    check_voice(voice, model, f"the voice at {str(path)!r}")
    return voice.to(next(model.parameters()).device)


def tune_voice(
    model: LinaSpeech,
    voice: VoiceState,
    clips: Sequence[dict],
    lr: float = 0.1,
    batch_size: int = 2,
    accumulation: int = 4,
    epochs: int = 1,
    seed: int = 0,
    path: str | Path | None = None,
) -> list[float]:
    """Tune ``voice`` (e.g. ``VoiceState.for_model(model, rank)``) in place on the target speaker's ``clips``.

    Args:
        model: the trained model; it is left frozen and in ``train()`` mode.
        voice: the initial states to learn, on the model's device.
        clips: ``{"id", "text_tokens" [L], "codes" [q, F]}`` items, as ``SpeechDataModule`` holds them.
        lr: Adam's learning rate.
        batch_size, accumulation: clips per batch, batches per optimiser step.
        epochs: passes over the clips.
        seed: seeds the order of the clips.
        path: where to save the tuned voice as safetensors (``VoiceState.save``), when given.

    Returns the loss of every batch, in order.
    """
    if len(clips) == 0:
        raise ValueError("clips is empty: give the target speaker's (text, codes) items")
    if min(batch_size, accumulation, epochs) < 1:
        raise ValueError(f"need batch_size, accumulation, epochs >= 1; got {batch_size}, {accumulation}, {epochs}")
    check_voice(voice, model)
    model.requires_grad_(False)
    model.train()
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(voice.parameters(), lr=lr)
    loader = DataLoader(
        list(clips),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_speech,
    )
    losses = []
    for _ in range(epochs):
        for index, batch in enumerate(loader, start=1):
            text, audio = batch["text_tokens"].to(device), batch["audio_tokens"].to(device)
            loss = model.loss(text, text != PAD, audio, voice.initial_states())
            (loss / accumulation).backward()
            losses.append(loss.item())
            if index % accumulation == 0 or index == len(loader):
                optimizer.step()
                optimizer.zero_grad()
    if path is not None:
        voice.save(path)
    return losses
