"""``LinaSpeechModule``: training steps lower the loss, it overfits four clips, validation writes a sample, and
top-10 accuracy counts the right targets."""

import csv

import lightning as L
import pytest
import soundfile
import torch
from lightning.pytorch.loggers import CSVLogger
from lrnn.audio.data import collate_speech
from lrnn.audio.lit import IGNORE, LinaSpeechModule, next_token_targets
from lrnn.audio.special_tokens import BOS, PAD
from lrnn.audio.text import byte_tokens


def trainer(tmp_path, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="run", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def logged(trainer: L.Trainer, key: str) -> list[float]:
    with open(f"{trainer.logger.log_dir}/metrics.csv", newline="") as file:
        return [float(row[key]) for row in csv.DictReader(file) if row.get(key)]


def test_training_steps_lower_the_loss(clip_data, tiny_codec_path, tiny_dims, tmp_path):
    torch.manual_seed(0)
    data = clip_data(4, batch_size=2, val_fraction=0.25)
    module = LinaSpeechModule(str(tiny_codec_path), lr=3e-3, warmup_steps=2, **tiny_dims)
    run = trainer(tmp_path, max_steps=12, limit_val_batches=0, log_every_n_steps=1)
    run.fit(module, datamodule=data)
    losses = logged(run, "train/loss")
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.2


def test_model_overfits_four_clips(clip_data, tiny_codec_path, tiny_dims, tmp_path):
    """Cross-entropy falls far below the unigram entropy of the codes (what a model ignoring context reaches)."""
    torch.manual_seed(0)
    data = clip_data(4, batch_size=4, val_fraction=0.0)
    module = LinaSpeechModule(str(tiny_codec_path), lr=1e-2, warmup_steps=5, **tiny_dims)
    (batch,) = data.train_dataloader()
    targets = next_token_targets(batch["audio_tokens"])
    counts = torch.bincount(targets[targets != IGNORE], minlength=module.model.vocab_size).float()
    unigram_entropy = -(counts[counts > 0] / counts.sum() * (counts[counts > 0] / counts.sum()).log()).sum()
    run = trainer(tmp_path, max_steps=50, limit_val_batches=0, log_every_n_steps=1)
    run.fit(module, datamodule=data)
    module.eval()
    with torch.no_grad():
        final = module.model.loss(batch["text_tokens"], batch["text_tokens"] != PAD, batch["audio_tokens"])
    first = logged(run, "train/loss")[0]
    assert final < 0.5 * first
    assert final < unigram_entropy - 1.0


def test_validation_writes_the_sample_wav_and_mel_png(clip_data, tiny_codec_path, tiny_dims, tmp_path):
    torch.manual_seed(0)
    data = clip_data(4, batch_size=2, val_fraction=0.25)
    module = LinaSpeechModule(str(tiny_codec_path), lr=3e-3, warmup_steps=2, **tiny_dims)
    run = trainer(tmp_path, max_epochs=4, log_every_n_steps=1)  # trained a little, so its sample has frames
    run.fit(module, datamodule=data)
    folder = tmp_path / "run"
    wav, rate = soundfile.read(folder / "sample.wav")
    assert rate == 24000 and 0 < len(wav) <= tiny_dims["sample_max_frames"] * 320 and len(wav) % 320 == 0
    assert (folder / "sample_mel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = {key for row in csv.DictReader(open(folder / "metrics.csv")) for key, value in row.items() if value}
    assert {"val/loss", "val/acc_top10"} <= metrics


def test_top10_accuracy_counts_only_real_targets_within_the_ten_best(tiny_codec_path, tiny_dims):
    module = LinaSpeechModule(str(tiny_codec_path), **tiny_dims)
    vocab = module.model.vocab_size
    audio = torch.tensor([[BOS, 9, 10, 5, PAD]])[..., None]  # targets 9, 10, 5 and a PAD that is ignored
    ranking = torch.arange(vocab, 0, -1).float()  # token t is the (t + 1)-th most likely: PAD first, 10 eleventh
    logits = ranking.expand(1, 4, 1, vocab)
    module.acc_top10["val"](logits.flatten(0, 2), next_token_targets(audio).flatten())
    assert module.acc_top10["val"].compute() == pytest.approx(2 / 3)


def test_the_codec_must_match_the_model(tiny_codec_path, tiny_dims):
    module = LinaSpeechModule(str(tiny_codec_path), **{**tiny_dims, "codebook_size": 16})
    with pytest.raises(ValueError, match="1 codebooks of 32 codes, the model 1 of 16: set the model's num_codebooks"):
        module.setup("fit")
    module = LinaSpeechModule(str(tiny_codec_path), **{**tiny_dims, "num_codebooks": 2})
    with pytest.raises(ValueError, match="or refit the codec with the model's"):
        module.setup("fit")


def test_a_missing_codec_file_is_named(tiny_dims, tmp_path):
    module = LinaSpeechModule(str(tmp_path / "none.safetensors"), **tiny_dims)
    with pytest.raises(FileNotFoundError, match="no codec at .*none.safetensors.*the data module's codec_path"):
        module.setup("fit")


def test_texts_longer_than_the_text_positions_are_named(tiny_dims):
    module = LinaSpeechModule("unused.safetensors", **{**tiny_dims, "max_text_positions": 8})
    items = [
        {"id": "short", "text_tokens": byte_tokens("hi"), "codes": torch.zeros(1, 3, dtype=torch.long)},
        {"id": "long", "text_tokens": byte_tokens("far too long"), "codes": torch.zeros(1, 3, dtype=torch.long)},
    ]
    with pytest.raises(ValueError, match=r"clips \['long'\] have texts of more than max_text_positions = 8 tokens"):
        module.training_step(collate_speech(items), 0)
