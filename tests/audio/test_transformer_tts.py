"""The Transformer-decoder baseline: KV-cache decoding equals the full causal forward, its size beside Lina-Speech's,
and its errors."""

import pytest
import torch
from lrnn.audio.model import LinaSpeech
from lrnn.audio.special_tokens import BOS, N_SPECIAL
from lrnn.audio.transformer_tts import TransformerTTS

CODEBOOK = 11


def tiny_model(num_codebooks: int = 2) -> TransformerTTS:
    torch.manual_seed(0)
    model = TransformerTTS(CODEBOOK, num_codebooks, d_model=16, num_layers=2, num_heads=2, text_layers=1, text_heads=2)
    return model.double().eval()


def inputs(batch: int = 3, text_length: int = 6, steps: int = 7, num_codebooks: int = 2):
    """Texts of lengths 6, 4, 5 (padded) and audio tokens ``[B, steps, q]`` starting with BOS."""
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(N_SPECIAL, 100, (batch, text_length), generator=gen)
    mask = torch.arange(text_length) < torch.tensor([text_length, 4, 5][:batch])[:, None]
    audio = torch.randint(N_SPECIAL, CODEBOOK + N_SPECIAL, (batch, steps, num_codebooks), generator=gen)
    audio[:, 0] = BOS
    return text.masked_fill(~mask, 0), mask, audio


@pytest.mark.parametrize("prompt", [1, 3])
def test_cached_decoding_equals_the_causal_forward(prompt, nan_poisoned_empty):
    """float64; the cache buffers start as NaN, so reading a step not yet written would show."""
    model = tiny_model()
    text, mask, audio = inputs()
    with torch.no_grad():
        full = model(text, mask, audio)
        logits, cache = model.prefill(text, mask, audio[:, :prompt], capacity=audio.shape[1])
        stepped = [logits]
        for s in range(prompt, audio.shape[1]):
            logits, cache = model.step(audio[:, s], cache)
            stepped.append(logits)
    assert cache.length == audio.shape[1]
    torch.testing.assert_close(torch.stack(stepped, dim=1), full[:, prompt - 1 :], rtol=1e-12, atol=1e-12)


def test_a_later_step_does_not_change_earlier_logits():
    """Causality of the forward: the logits of steps < s ignore the tokens from s on."""
    model = tiny_model()
    text, mask, audio = inputs()
    changed = audio.clone()
    changed[:, 4:] = N_SPECIAL
    with torch.no_grad():
        torch.testing.assert_close(model(text, mask, audio)[:, :4], model(text, mask, changed)[:, :4])


def test_size_and_depth_match_lina_speech():
    """At the paper's size (d 1024, Lina's 6 + 6 GLA blocks): 12 blocks, parameters within 2%."""
    with torch.device("meta"):
        lina, baseline = LinaSpeech(1024), TransformerTTS(1024)
    lina_params = sum(p.numel() for p in lina.parameters())
    baseline_params = sum(p.numel() for p in baseline.parameters())
    assert len(baseline.blocks) == len(lina.gla_blocks) == 12
    assert abs(baseline_params / lina_params - 1) < 0.02
    assert baseline.head.weight.shape == lina.head.weight.shape


def test_errors():
    model = tiny_model()
    text, mask, audio = inputs()
    with pytest.raises(ValueError, match=r"need 1 <= P <= capacity, got P = 3 .* capacity = 2"):
        model.prefill(text, mask, audio[:, :3], capacity=2)
    with pytest.raises(ValueError, match=r"audio tokens must be \[B, S, q = 2\], got \(3, 7\)"):
        model(text, mask, audio[..., 0])
    with pytest.raises(ValueError, match=r"audio tokens must lie in \[0, 14\), got \[1, 14\]"):
        model(text, mask, audio.masked_fill(audio == audio.max(), CODEBOOK + N_SPECIAL))
    _, cache = model.prefill(text, mask, audio[:, :2], capacity=3)
    with pytest.raises(ValueError, match=r"tokens must be \[B = 3, q = 2\], got \(3, 1\)"):
        model.step(audio[:, 2, :1], cache)
    _, cache = model.step(audio[:, 2], cache)
    with pytest.raises(ValueError, match="the cache is full: 3 of 3 steps"):
        model.step(audio[:, 3], cache)
    with pytest.raises(ValueError, match="d_model = 16 must split into num_heads = 3 heads"):
        TransformerTTS(CODEBOOK, d_model=16, num_heads=3)
