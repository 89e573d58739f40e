"""``LinaSpeechModule``: Lina-Speech trained end to end on ``SpeechDataModule`` batches, with samples it can hear.

The recipe the authors' code and checkpoint name give: next-token cross-entropy (``LinaSpeech.loss``), AdamW with
weight decay 0.1 on matrices only, ``betas (0.9, 0.999)``, lr 2e-4 after a linear warm-up of 500 steps, then a
cosine to ``min_lr`` at the trainer's last step (bf16-mixed and gradient clipping 1.0 are the trainer's settings).
"""

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.figure import Figure
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ..metrics import ResetMetricsOnEvaluation
from ..schedules import warmup_cosine
from .codec.mel_kmeans import MelKMeansCodec
from .model.lina import LinaSpeech
from .special_tokens import BOS, PAD
from .wav import write_wav

IGNORE = -100


def next_token_targets(audio: torch.Tensor) -> torch.Tensor:
    """``audio [B, S, q]`` (delay layout) -> the targets ``[B, S - 1, q]`` of ``LinaSpeech.forward(audio[:, :-1])``,
    with ``IGNORE`` where the target is ``PAD`` or ``BOS`` (padding and the delay's fill), as ``LinaSpeech.loss``."""
    target = audio[:, 1:]
    return target.masked_fill((target == PAD) | (target == BOS), IGNORE)


def save_mel_png(log_mel: torch.Tensor, path: str | Path, frame_rate: float) -> None:
    """Draw ``log_mel [n_mels, F]`` (nepers) against time in seconds to a PNG at ``path``."""
    figure = Figure(figsize=(8, 3))
    axes = figure.subplots()
    image = axes.imshow(
        log_mel.cpu().numpy(),
        origin="lower",
        aspect="auto",
        extent=(0, log_mel.shape[1] / frame_rate, 0, log_mel.shape[0]),
    )
    axes.set_xlabel("time (s)")
    axes.set_ylabel("mel band")
    figure.colorbar(image, ax=axes, label="log mel (Np)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


class LinaSpeechModule(ResetMetricsOnEvaluation, L.LightningModule):
    """Trains ``LinaSpeech`` (built from the arguments below) with teacher forcing.

    Logs ``train/loss``, ``val/loss`` (cross-entropy in nats per token) and ``val/acc_top10`` (share of non-PAD,
    non-BOS targets among the 10 most likely tokens, all codebooks together), and the same under ``test/``. At the
    end of every validation (not the sanity check), rank zero synthesises the first validation text (``generate``:
    top-k sampling seeded with ``sample_seed``, at most ``sample_max_frames`` frames) and writes ``sample.wav``
    (decoded by the codec at ``codec_path``) and ``sample_mel.png`` (its log-mel spectrogram) to the logger's folder.

    Args:
        codec_path: the fitted ``MelKMeansCodec`` the data module encodes with; its ``codebook_size`` and
            ``n_codebooks`` must match the model's (checked in ``setup``, after the data module prepared it).
        codebook_size, num_codebooks, d_model, num_layers, num_heads, text_layers, text_heads, position_dim,
            pos_net_heads, max_text_positions, dropout: of ``LinaSpeech``.
        lr, min_lr: peak and final learning rates.
        warmup_steps: linear warm-up steps from ``lr / warmup_steps``.
        weight_decay: AdamW decoupled weight decay of the matrices (not of norms' gains or biases).
        betas: AdamW's.
        sample_max_frames, sample_top_k, sample_seed: of the validation sample.
    """

    def __init__(
        self,
        codec_path: str,
        codebook_size: int = 1024,
        num_codebooks: int = 1,
        d_model: int = 1024,
        num_layers: int = 6,
        num_heads: int = 4,
        text_layers: int = 6,
        text_heads: int = 4,
        position_dim: int = 64,
        pos_net_heads: int = 1,
        max_text_positions: int = 2000,
        dropout: float = 0.0,
        lr: float = 2e-4,
        min_lr: float = 0.0,
        warmup_steps: int = 500,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.999),
        sample_max_frames: int = 750,
        sample_top_k: int = 100,
        sample_seed: int = 0,
    ) -> None:
        super().__init__()
        if not lr > 0 or not 0 <= min_lr <= lr or warmup_steps < 0:
            raise ValueError(f"need lr > 0, 0 <= min_lr <= lr, warmup_steps >= 0; got {lr}, {min_lr}, {warmup_steps}")
        self.save_hyperparameters()
        self.model = LinaSpeech(
            codebook_size,
            num_codebooks=num_codebooks,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            text_layers=text_layers,
            text_heads=text_heads,
            position_dim=position_dim,
            pos_net_heads=pos_net_heads,
            max_text_positions=max_text_positions,
            dropout=dropout,
        )
        top10 = min(10, self.model.vocab_size)
        self.acc_top10 = nn.ModuleDict(
            {
                split: MulticlassAccuracy(self.model.vocab_size, top_k=top10, average="micro", ignore_index=IGNORE)
                for split in ("val", "test")
            }
        )
        self._sample_text: torch.Tensor | None = None

    def load_codec(self) -> MelKMeansCodec:
        """The codec at ``codec_path``, checked against the model's codebooks."""
        if not Path(self.hparams.codec_path).is_file():
            raise FileNotFoundError(
                f"no codec at {self.hparams.codec_path!r}: codec_path must name the fitted codec that encoded the"
                " training data (the data module's codec_path)"
            )
        codec = MelKMeansCodec.load(self.hparams.codec_path)
        if (codec.codebook_size, codec.n_codebooks) != (self.hparams.codebook_size, self.hparams.num_codebooks):
            raise ValueError(
                f"the codec at {self.hparams.codec_path} has {codec.n_codebooks} codebooks of {codec.codebook_size}"
                f" codes, the model {self.hparams.num_codebooks} of {self.hparams.codebook_size}: set the model's"
                " num_codebooks and codebook_size to the codec's, or refit the codec with the model's (delete the file"
                " and give the data module codec_settings n_codebooks and codebook_size)"
            )
        return codec

    def setup(self, stage: str) -> None:
        self.load_codec()

    def batch_text(self, batch: dict) -> torch.Tensor:
        """The batch's ``text_tokens [B, L]``; ``ValueError`` naming the clips whose texts exceed the model's
        ``max_text_positions`` tokens."""
        text, limit = batch["text_tokens"], self.hparams.max_text_positions
        if text.shape[1] > limit:
            lengths = batch["text_lengths"].tolist()
            ids = [clip_id for clip_id, length in zip(batch["ids"], lengths, strict=True) if length > limit]
            raise ValueError(
                f"clips {ids} have texts of more than max_text_positions = {limit} tokens: split them into shorter"
                " sentences, or raise max_text_positions"
            )
        return text

    def forward(self, batch: dict) -> torch.Tensor:
        """Next-token ``logits [B, S - 1, q, V]`` of the batch's audio tokens ``[B, S, q]`` given its texts."""
        text = self.batch_text(batch)
        return self.model(text, text != PAD, batch["audio_tokens"][:, :-1])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        text = self.batch_text(batch)
        loss = self.model.loss(text, text != PAD, batch["audio_tokens"])
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(text))
        return loss

    def _evaluate(self, batch: dict, split: str) -> None:
        logits = self(batch).flatten(0, 2)
        targets = next_token_targets(batch["audio_tokens"]).flatten()
        batch_size = len(batch["ids"])
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=batch_size)
        self.acc_top10[split](logits, targets)
        self.log(f"{split}/acc_top10", self.acc_top10[split], on_epoch=True, batch_size=batch_size)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")
        if batch_idx == 0:
            self._sample_text = batch["text_tokens"][0, : batch["text_lengths"][0]]

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        logger = self.logger
        if self.trainer.sanity_checking or not self.trainer.is_global_zero or logger is None or not logger.log_dir:
            return
        self.write_sample(Path(logger.log_dir))

    def write_sample(self, folder: Path) -> None:
        """Synthesise the first validation text to ``folder/sample.wav`` and ``folder/sample_mel.png``."""
        hp = self.hparams
        generator = torch.Generator(self.device).manual_seed(hp.sample_seed)
        (codes,) = self.model.generate(
            [self._sample_text], max_frames=hp.sample_max_frames, top_k=hp.sample_top_k, generator=generator
        )
        if codes.shape[1] == 0:
            rank_zero_warn("the validation sample ended before its first frame: no sample.wav this time")
            return
        codec = self.load_codec()
        wav = codec.decode(codes.cpu())
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / "sample.wav", wav, codec.sample_rate)
        save_mel_png(codec.log_mel(wav[None])[0], folder / "sample_mel.png", codec.frame_rate)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        matrices = [p for p in self.parameters() if p.requires_grad and p.ndim >= 2]
        others = [p for p in self.parameters() if p.requires_grad and p.ndim < 2]
        groups = [{"params": matrices, "weight_decay": hp.weight_decay}, {"params": others, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))
        total = int(self.trainer.estimated_stepping_batches)
        schedule = warmup_cosine(optimizer, total, hp.warmup_steps, floor=hp.min_lr / hp.lr)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
