"""``VideoPredictionModule``: teacher-forced next-frame training and long-horizon rollout evaluation."""

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from ...metrics import ResetMetricsOnEvaluation
from .losses import next_frame_loss
from .plots import plot_rollout_strip
from .predictor import VideoPredictor


def alexnet_weights_file() -> Path:
    """Where torchvision keeps the ImageNet AlexNet weights that LPIPS (AlexNet) needs."""
    from torchvision.models import AlexNet_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.DEFAULT.url).name


class VideoPredictionModule(ResetMetricsOnEvaluation, L.LightningModule):
    """Next-frame prediction of ``[B, T, C, H, W]`` videos in [-1, 1] as in the official ConvS5 code.

    Training: the model reads frames ``0 .. T-2`` in parallel and predicts frames ``1 .. T-1`` (teacher forcing);
    the loss is ``loss_weight * MSE + (1 - loss_weight) * L1`` (``next_frame_loss``). AdamW with a linear warm-up
    from 0 and a cosine decay to 0.

    Validation and test: the teacher-forced losses over the whole (longer) evaluation sequence, then the model
    is conditioned on its first ``context_frames`` frames and rolls out every further frame with its step form,
    feeding back its own predictions. The rolled-out frames, mapped to [0, 1], are scored against the truth with
    torchmetrics: ``psnr`` and ``ssim`` (Gaussian 11x11, sigma 1.5) per frame, averaged; ``lpips`` (AlexNet) only
    when torchvision's AlexNet weights are already on disk (``alexnet_weights_file``; nothing is downloaded,
    and a warning says when LPIPS is skipped). Logged as ``val/...`` and ``test/...``. The first sequence of
    each evaluation is drawn to ``rollout_val.png`` / ``rollout_test.png`` in the logger's folder: context,
    predicted and true frames (``plot_rollout_strip``).

    Args:
        model: a ``VideoPredictor`` (``ConvS5Video``, ``ConvLSTMVideo``).
        loss_weight: weight of the MSE term (0.5).
        lr: peak learning rate.
        betas: AdamW moment decay rates (0.9, 0.95 officially).
        weight_decay: AdamW decoupled weight decay, on every parameter (as ``optax.adamw``).
        warmup_steps: steps of linear warm-up from 0.
        decay_steps: step at which the cosine reaches 0, counting the warm-up; None: the trainer's last step.
        context_frames: frames the evaluation conditions on (100 officially).
        strip_frames: frames per row of the PNG strip.
        rollout_cuda_graph: on CUDA, roll out from one captured step replayed every frame
            (``VideoPredictor.rollout(cuda_graph=True)``: the same frames without the host's launches per frame);
            False (the default until its GPU tests have run, ``benchmarks/NOTES.md``) generates eagerly.
    """

    def __init__(
        self,
        model: VideoPredictor,
        loss_weight: float = 0.5,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 1e-5,
        warmup_steps: int = 5000,
        decay_steps: int | None = None,
        context_frames: int = 100,
        strip_frames: int = 8,
        rollout_cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(model, VideoPredictor):
            raise TypeError(f"model must be a VideoPredictor (ConvS5Video, ConvLSTMVideo), got {type(model).__name__}")
        if not 0 <= loss_weight <= 1:
            raise ValueError(f"loss_weight must be in [0, 1], got {loss_weight}")
        if not isinstance(context_frames, int) or context_frames < 1:
            raise ValueError(f"context_frames must be a positive int, got {context_frames!r}")
        if decay_steps is not None and decay_steps <= warmup_steps:
            raise ValueError(f"decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps})")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.metrics = nn.ModuleDict({split: self._image_metrics() for split in ("val", "test")})
        self._strips: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def _image_metrics() -> nn.ModuleDict:
        metrics = nn.ModuleDict(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=11, sigma=1.5),
            }
        )
        weights = alexnet_weights_file()
        if weights.is_file():
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            metrics["lpips"] = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
        else:
            rank_zero_warn(f"LPIPS is not computed: torchvision's AlexNet weights are not at {weights} (no download)")
        return metrics

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames)[0]

    def _teacher_forced(self, frames: torch.Tensor, split: str) -> torch.Tensor:
        """Loss of predicting ``frames[:, 1:]`` from ``frames[:, :-1]``; logs ``loss``, ``mse`` and ``l1``."""
        if frames.dim() != 5 or frames.shape[1] < 2:
            raise ValueError(f"batches must be videos [B, T, C, H, W] with T >= 2, got {tuple(frames.shape)}")
        loss, mse, l1 = next_frame_loss(self.model(frames[:, :-1])[0], frames[:, 1:], self.hparams.loss_weight)
        on_step = split == "train"
        for name, value in (("loss", loss), ("mse", mse), ("l1", l1)):
            self.log(f"{split}/{name}", value, on_step=on_step, on_epoch=not on_step, prog_bar=name == "loss")
        return loss

    def training_step(self, frames: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self._teacher_forced(frames, "train")

    def _evaluate(self, frames: torch.Tensor, batch_idx: int, split: str) -> None:
        self._teacher_forced(frames, split)
        context = self.hparams.context_frames
        if frames.shape[1] <= context:
            raise ValueError(
                f"evaluation sequences have {frames.shape[1]} frames, not more than context_frames = {context}"
            )
        cuda_graph = self.hparams.rollout_cuda_graph and frames.is_cuda
        prediction = self.model.rollout(frames[:, :context], frames.shape[1] - context, cuda_graph=cuda_graph)
        truth = frames[:, context:]
        unit = lambda x: (x.clamp(-1, 1).flatten(0, 1) + 1) / 2  # noqa: E731
        for name, metric in self.metrics[split].items():
            if name == "lpips":
                metric.update(unit(prediction).expand(-1, 3, -1, -1), unit(truth).expand(-1, 3, -1, -1))
            else:
                metric.update(unit(prediction), unit(truth))
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "psnr")
        if batch_idx == 0:
            self._strips[split] = (frames[0, :context].cpu(), prediction[0].cpu(), truth[0].cpu())

    def validation_step(self, frames: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(frames, batch_idx, "val")

    def test_step(self, frames: torch.Tensor, batch_idx: int) -> None:
        self._evaluate(frames, batch_idx, "test")

    def _write_strip(self, split: str) -> None:
        strip = self._strips.pop(split, None)
        log_dir = self.logger.log_dir if self.logger is not None else None
        writable = log_dir is not None and self.trainer.is_global_zero and not self.trainer.sanity_checking
        if strip is not None and writable:
            plot_rollout_strip(*strip, Path(log_dir) / f"rollout_{split}.png", self.hparams.strip_frames)

    def on_validation_epoch_end(self) -> None:
        self._write_strip("val")

    def on_test_epoch_end(self) -> None:
        self._write_strip("test")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, betas=hp.betas, weight_decay=hp.weight_decay)
        end = hp.decay_steps if hp.decay_steps is not None else max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(hp.warmup_steps, end - 1)

        def factor(step: int) -> float:
            if step < warmup:
                return step / warmup
            progress = min((step - warmup) / max(end - warmup, 1), 1.0)
            return 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
