"""LightningModules of the time-series domain."""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..metrics import reset_metrics
from ..schedules import warmup_cosine
from .classify.model import MixerClassifier


class SequenceClassifier(L.LightningModule):
    """Cross-entropy training of a ``MixerClassifier`` with AdamW and a warm-up + cosine learning rate.

    Batches are ``(x [B, L, in_channels], y [B])``. Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``,
    ``test/loss`` and ``test/acc``; after ``test``, ``test_confusion`` holds the confusion matrix (rows: true
    class). ``predict`` returns the predicted classes ``[B]``.

    Args:
        in_channels, num_classes, d_model, n_layers, mixer, mixer_cfg, dropout, pooling: see ``MixerClassifier``.
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay, applied to matrices only (not to norms, biases, ``D``, or
            the SSM's eigenvalues and timescales).
        betas: AdamW moment decay rates.
        warmup_steps: linear warm-up steps; then the rate follows a cosine to zero at the last step.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 6,
        d_model: int = 64,
        n_layers: int = 4,
        mixer: str = "s5",
        mixer_cfg: dict[str, Any] | None = None,
        dropout: float = 0.1,
        pooling: str = "mean",
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.98),
        warmup_steps: int = 100,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = MixerClassifier(
            in_channels, num_classes, d_model, n_layers, mixer, mixer_cfg or {}, dropout, pooling
        )
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _shared_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], split: str, accuracy: MulticlassAccuracy
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, num_classes]`` and the mean cross-entropy of one batch; logs both metrics of ``split``."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        accuracy(logits, y)
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, sync_dist=not on_step)
        self.log(f"{split}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return logits, loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train", self.train_acc)[1]

    def on_validation_epoch_start(self) -> None:
        """Remake ``val_acc``'s states under this loop's grad mode (see ``reset_metrics``). Not ``reset_metrics(self)``:
        inside ``fit`` the validation runs before ``train_acc``'s epoch value is logged."""
        self.val_acc.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val", self.val_acc)

    def on_test_epoch_start(self) -> None:
        reset_metrics(self)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        logits, _ = self._shared_step(batch, "test", self.test_acc)
        self.test_confusion.update(logits, batch[1])

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self(batch[0]).argmax(dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        decay = [p for p in self.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=hp.betas)
        total = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": warmup_cosine(optimizer, total, hp.warmup_steps)}
