"""A tiny Lina-Speech and a batch for the model tests (q = 2 codebooks of 16 codes, d_model 32, one layer a stack)."""

import pytest
import torch
from lrnn.audio.data import collate_speech
from lrnn.audio.model import LinaSpeech
from lrnn.audio.text import byte_tokens


@pytest.fixture
def tiny_lina() -> LinaSpeech:
    torch.manual_seed(0)
    model = LinaSpeech(
        codebook_size=16,
        num_codebooks=2,
        d_model=32,
        num_layers=1,
        num_heads=2,
        text_layers=1,
        text_heads=2,
        position_dim=16,
        max_text_positions=64,
    )
    return model.eval()


@pytest.fixture
def speech_batch() -> dict:
    """Two clips of 7 and 4 frames with texts of different lengths, collated in Lina's layout."""
    generator = torch.Generator().manual_seed(1)
    items = [
        {
            "id": "a",
            "text_tokens": byte_tokens("hello there"),
            "codes": torch.randint(0, 16, (2, 7), generator=generator),
        },
        {"id": "b", "text_tokens": byte_tokens("hi"), "codes": torch.randint(0, 16, (2, 4), generator=generator)},
    ]
    batch = collate_speech(items)
    lengths = batch["text_lengths"]
    batch["text_mask"] = torch.arange(batch["text_tokens"].shape[1]) < lengths[:, None]
    return batch
