"""Initial-state tuning: gradients reach the voice state only, Adam lowers the loss, safetensors round-trip."""

import torch
from lrnn.audio.model import VoiceState


def _loss(model, batch, voice):
    return model.loss(batch["text_tokens"], batch["text_mask"], batch["audio_tokens"], voice.initial_states())


def test_only_the_voice_state_receives_gradients(tiny_lina, speech_batch):
    tiny_lina.requires_grad_(False)
    voice = VoiceState.for_model(tiny_lina, rank=2)
    assert len(voice.initial_states()) == 2 and voice.initial_states()[0].shape == (2, 16, 32)
    _loss(tiny_lina, speech_batch, voice).backward()
    assert all(parameter.grad is None for parameter in tiny_lina.parameters())
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in voice.parameters())


def test_zero_voice_state_equals_no_state(tiny_lina, speech_batch):
    voice = VoiceState.for_model(tiny_lina)
    with torch.no_grad():
        for values in voice.values:
            values.zero_()
    batch = speech_batch
    plain = tiny_lina.loss(batch["text_tokens"], batch["text_mask"], batch["audio_tokens"])
    torch.testing.assert_close(_loss(tiny_lina, batch, voice), plain)


def test_adam_steps_lower_the_loss(tiny_lina, speech_batch):
    """Every step lowers the loss. The drop is small (about 0.006 nats in 10 steps): an untrained model's output
    depends little on its initial states."""
    tiny_lina.requires_grad_(False)
    torch.manual_seed(0)
    voice = VoiceState.for_model(tiny_lina)
    optimizer = torch.optim.Adam(voice.parameters(), lr=0.1)
    losses = []
    for _ in range(10):
        loss = _loss(tiny_lina, speech_batch, voice)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    losses.append(_loss(tiny_lina, speech_batch, voice).item())
    assert all(later < earlier for earlier, later in zip(losses[:-1], losses[1:], strict=True)), losses
    assert losses[-1] < losses[0] - 0.003, losses


def test_save_load_round_trips_exactly(tmp_path, tiny_lina):
    voice = VoiceState.for_model(tiny_lina, rank=3, scale=0.05)
    voice.save(tmp_path / "speaker.safetensors")
    loaded = VoiceState.load(tmp_path / "speaker.safetensors")
    assert loaded.scale == voice.scale
    for saved, restored in zip(voice.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(saved, restored)
    for saved, restored in zip(voice.initial_states(), loaded.initial_states(), strict=True):
        assert torch.equal(saved, restored)
