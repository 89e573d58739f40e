"""``ImageClassifier``: any timm model (ours registered by ``import lrnn.vision``) trained DeiT-style."""

from typing import Any

import lightning as L
import timm
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import param_groups_weight_decay
from torchmetrics.classification import MulticlassAccuracy

from ...metrics import ResetMetricsOnEvaluation
from ...schedules import warmup_cosine


class ImageClassifier(ResetMetricsOnEvaluation, L.LightningModule):
    """Classification with mixup/cutmix, label smoothing, AdamW and a warm-up + cosine learning rate, as in the
    DeiT recipe that Vim and VMamba train with.

    Batches are ``(images [B, 3, H, W], labels [B])``. Logs ``train/loss``, ``val/loss``, ``val/acc``,
    ``val/acc5`` and the same under ``test/``; ``predict`` returns class indices ``[B]``.

    Args:
        model: a timm model name, e.g. ``vim_tiny_patch16_224`` or ``vmamba_tiny_s1l8``.
        model_kwargs: passed to ``timm.create_model`` (``img_size``, ``drop_path_rate``, ...).
        num_classes: classes of the new head.
        pretrained_file: a local checkpoint loaded through timm (``pretrained_cfg_overlay=dict(file=...)``, with
            the model's checkpoint filter); the head is re-initialised when its size differs.
        lr, min_lr: peak and final learning rates (per step: linear warm-up, then cosine).
        warmup_epochs: epochs of linear warm-up.
        weight_decay: AdamW decoupled weight decay on matrices (not on norms, biases or the model's
            ``no_weight_decay()`` names).
        mixup_alpha, cutmix_alpha: Beta parameters of mixup and cutmix (0 and 0 switch both off).
        label_smoothing: smoothing of the (mixed) targets.
    """

    def __init__(
        self,
        model: str = "vim_tiny_patch16_224",
        model_kwargs: dict[str, Any] | None = None,
        num_classes: int = 10,
        pretrained_file: str | None = None,
        lr: float = 5e-4,
        min_lr: float = 1e-5,
        warmup_epochs: int = 5,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        kwargs = dict(model_kwargs or {})
        if pretrained_file is not None:
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": pretrained_file})
        self.net = timm.create_model(model, num_classes=num_classes, **kwargs)
        self.mixup = None
        if mixup_alpha > 0 or cutmix_alpha > 0:
            self.mixup = Mixup(
                mixup_alpha=mixup_alpha,
                cutmix_alpha=cutmix_alpha,
                label_smoothing=label_smoothing,
                num_classes=num_classes,
            )
        self.soft_target_loss = SoftTargetCrossEntropy()
        top1 = lambda: MulticlassAccuracy(num_classes, average="micro")  # noqa: E731
        top5 = lambda: MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")  # noqa: E731
        self.val_acc, self.val_acc5, self.test_acc, self.test_acc5 = top1(), top5(), top1(), top5()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        if self.mixup is not None:
            if len(labels) % 2:
                raise ValueError(f"mixup/cutmix needs an even batch, got {len(labels)} (drop the last batch)")
            images, targets = self.mixup(images, labels)
            loss = self.soft_target_loss(self(images), targets)
        else:
            loss = F.cross_entropy(self(images), labels, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _evaluate(self, batch, split: str, top1: MulticlassAccuracy, top5: MulticlassAccuracy) -> None:
        images, labels = batch
        logits = self(images)
        self.log(f"{split}/loss", F.cross_entropy(logits, labels), on_epoch=True, prog_bar=True, sync_dist=True)
        top1(logits, labels)
        top5(logits, labels)
        self.log(f"{split}/acc", top1, on_epoch=True, prog_bar=True)
        self.log(f"{split}/acc5", top5, on_epoch=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc, self.val_acc5)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc, self.test_acc5)

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self(batch[0]).argmax(dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        skip = getattr(self.net, "no_weight_decay", lambda: set())()
        groups = param_groups_weight_decay(self.net, hp.weight_decay, no_weight_decay_list=skip)
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=hp.betas)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = round(hp.warmup_epochs * total / max(self.trainer.max_epochs or 1, 1))
        return {
            "optimizer": optimizer,
            "lr_scheduler": warmup_cosine(optimizer, total, warmup, floor=hp.min_lr / hp.lr),
        }
