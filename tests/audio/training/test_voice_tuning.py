"""``tune_voice``: only the voice's factors change, the loss on the speaker's clips drops, the saved voice loads
back, and a voice of another model or a file that is no voice is refused."""

import pytest
import torch
from lrnn.audio.data import collate_speech
from lrnn.audio.model.lina import LinaSpeech
from lrnn.audio.model.voice_state import VoiceState
from lrnn.audio.special_tokens import PAD
from lrnn.audio.voice_tuning import load_voice, tune_voice
from safetensors.torch import save_file


def clips_loss(model: LinaSpeech, voice: VoiceState, clips: list[dict]) -> float:
    batch = collate_speech(clips)
    text = batch["text_tokens"]
    with torch.no_grad():
        return model.loss(text, text != PAD, batch["audio_tokens"], voice.initial_states()).item()


def briefly_trained_model(dims: dict, clips: list[dict], steps: int) -> LinaSpeech:
    model = LinaSpeech(**dims)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = collate_speech(clips)
    text = batch["text_tokens"]
    for _ in range(steps):
        model.loss(text, text != PAD, batch["audio_tokens"]).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


def test_tuning_changes_only_the_voice_and_lowers_the_loss(clip_data, tiny_dims, tmp_path):
    """On the first 20 frames of four clips (where the initial state weighs most), after 10 steps of training."""
    torch.manual_seed(0)
    clips = [{**clip, "codes": clip["codes"][:, :20]} for clip in clip_data(4, val_fraction=0.0).train_items]
    dims = {key: value for key, value in tiny_dims.items() if key != "sample_max_frames"}
    model = briefly_trained_model(dims, clips, steps=10)
    voice = VoiceState.for_model(model, rank=2)
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    factors = [parameter.detach().clone() for parameter in voice.parameters()]
    before = clips_loss(model.eval(), voice, clips)

    path = tmp_path / "voice.safetensors"
    losses = tune_voice(model, voice, clips, batch_size=2, accumulation=2, epochs=40, path=path)

    assert len(losses) == 80
    assert all(torch.equal(tensor, weights[name]) for name, tensor in model.state_dict().items())
    assert all(not parameter.requires_grad and parameter.grad is None for parameter in model.parameters())
    assert all(not torch.equal(new, old) for new, old in zip(voice.parameters(), factors, strict=True))
    assert clips_loss(model.eval(), voice, clips) < before - 0.02
    loaded = VoiceState.load(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.initial_states(), voice.initial_states(), strict=True))


def test_tuning_refuses_no_clips_and_bad_batching(tiny_dims):
    dims = {key: value for key, value in tiny_dims.items() if key != "sample_max_frames"}
    model = LinaSpeech(**dims)
    voice = VoiceState.for_model(model)
    with pytest.raises(ValueError, match="clips is empty"):
        tune_voice(model, voice, [])
    with pytest.raises(ValueError, match="accumulation"):
        tune_voice(model, voice, [{}], accumulation=0)


def test_a_voice_of_another_model_is_refused_with_the_fix(tiny_dims, tmp_path):
    dims = {key: value for key, value in tiny_dims.items() if key != "sample_max_frames"}
    model, other = LinaSpeech(**dims), LinaSpeech(**{**dims, "num_layers": 2})
    path = tmp_path / "voice.safetensors"
    VoiceState.for_model(other).save(path)
    with pytest.raises(ValueError, match=r"voice.safetensors' holds 4 states .* the model 2 .*tune_voice"):
        load_voice(path, model)
    with pytest.raises(ValueError, match=r"the voice holds 4 states of shapes \[\(2, 16, 32\)"):
        tune_voice(model, VoiceState.for_model(other), [{}])
    assert len(load_voice(path, other).initial_states()) == 4


def test_a_file_that_is_no_voice_is_named(tiny_dims, tmp_path):
    model = LinaSpeech(**{key: value for key, value in tiny_dims.items() if key != "sample_max_frames"})
    with pytest.raises(FileNotFoundError, match="no voice at .*missing.safetensors"):
        load_voice(tmp_path / "missing.safetensors", model)
    save_file({"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}, tmp_path / "other.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    for name in ("other", "garbage"):
        with pytest.raises(ValueError, match=f"{name}.safetensors' is not a voice that VoiceState.save wrote"):
            load_voice(tmp_path / f"{name}.safetensors", model)
