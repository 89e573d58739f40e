"""LinaSpeech: parallel == step decoding, the loss's ignored targets, generation's stop rule, prompt and batching."""

import torch
import torch.nn.functional as F
from lrnn.audio.delay import lina_delay
from lrnn.audio.special_tokens import BOS, EOS, PAD


def test_parallel_forward_equals_step_by_step_decoding(tiny_lina, speech_batch):
    text, mask, audio = speech_batch["text_tokens"], speech_batch["text_mask"], speech_batch["audio_tokens"]
    logits = tiny_lina(text, mask, audio)
    assert logits.shape == (*audio.shape, 19)
    cache = tiny_lina.init_cache(text, mask)
    steps = []
    for s in range(audio.shape[1]):
        step_logits, cache = tiny_lina.step(audio[:, s], cache)
        steps.append(step_logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), logits, rtol=1e-5, atol=1e-5)


def test_loss_ignores_pad_and_bos_targets(tiny_lina, speech_batch):
    """The loss equals cross-entropy averaged over the targets that are codes or EOS only."""
    text, mask, audio = speech_batch["text_tokens"], speech_batch["text_mask"], speech_batch["audio_tokens"]
    assert (audio == PAD).any() and (audio[:, 1:] == BOS).any()
    logits = tiny_lina(text, mask, audio[:, :-1])
    target = audio[:, 1:]
    kept = (target != PAD) & (target != BOS)
    expected = F.cross_entropy(logits[kept], target[kept])
    torch.testing.assert_close(tiny_lina.loss(text, mask, audio), expected)


def _force_eos_at(model, column):
    """Patch ``model.step`` so that codebook 0 emits EOS at ``column`` of the layout (and never before)."""
    real_step = model.step
    calls = {"count": 0}

    def step(tokens, cache):
        logits, cache = real_step(tokens, cache)
        calls["count"] += 1
        logits[:, 0, EOS] = 1e4 if calls["count"] == column else -1e4
        return logits, cache

    model.step = step
    return calls


def test_generate_stops_on_eos_and_returns_undelayed_codes(tiny_lina, speech_batch):
    """EOS on codebook 0 at column 5 ends a clip of 4 frames after q - 1 more steps (Lina's layout)."""
    calls = _force_eos_at(tiny_lina, column=5)
    codes = tiny_lina.generate([speech_batch["text_tokens"][0]], max_frames=20, generator=torch.Generator())
    assert len(codes) == 1 and codes[0].shape == (2, 4)
    assert codes[0].min() >= 0 and codes[0].max() < 16
    assert calls["count"] == 4 + 2


def test_generate_caps_at_max_frames_and_keeps_the_prompt(tiny_lina, speech_batch):
    _force_eos_at(tiny_lina, column=-1)
    prompt = torch.randint(0, 16, (2, 3))
    (codes,) = tiny_lina.generate([speech_batch["text_tokens"][1]], max_frames=6, prompt=[prompt])
    assert codes.shape == (2, 6)
    torch.testing.assert_close(codes[:, :3], prompt)


def test_generated_tokens_form_lina_layout(tiny_lina, speech_batch):
    """Re-delaying the generated codes and scoring them step by step reproduces the codes greedily chosen by
    generate on the codebooks after the first (a consistency check of delay, forcing and undelay)."""
    text = speech_batch["text_tokens"][:1]
    (codes,) = tiny_lina.generate([text[0]], max_frames=8, generator=torch.Generator().manual_seed(3))
    layout = lina_delay(codes).T[None]
    logits = tiny_lina(text, torch.ones_like(text, dtype=torch.bool), layout[:, :-1])
    logits[..., [PAD, BOS, EOS]] = -torch.inf
    frames = codes.shape[1]
    greedy = logits[0, 1 : frames + 1, 1].argmax(-1)
    torch.testing.assert_close(layout[0, 2 : frames + 2, 1], greedy)


def test_batch_generation_equals_one_by_one_with_per_item_generators(tiny_lina, speech_batch):
    texts = [speech_batch["text_tokens"][0], speech_batch["text_tokens"][1, : speech_batch["text_lengths"][1]]]
    batched = tiny_lina.generate(texts, max_frames=12, generator=[torch.Generator().manual_seed(s) for s in (5, 6)])
    for text, seed, codes in zip(texts, (5, 6), batched, strict=True):
        (alone,) = tiny_lina.generate([text], max_frames=12, generator=[torch.Generator().manual_seed(seed)])
        torch.testing.assert_close(codes, alone)
