"""``UniLIONModule``: trains one ``UniLION`` for every input combination and scores each combination apart.

Batches are ``collate_clips``' two-frame clips. A training step picks the inputs at random (the camera with
probability ``1 - camera_dropout``, the previous frame with ``1 - time_dropout``; LiDAR always): with time, the
previous frame's tokens are formed first (no gradient) so the temporal branch has something to carry. The loss is
``CenterHead.loss`` plus ``segmentation_weight`` times the BEV footprint segmentation loss plus, with the camera,
``depth_weight`` (UniLION: 0.05) times the camera depth loss. Validation and test run all four combinations on
every clip and log, per combination ``c`` in ``L, LT, LC, LCT``: ``{split}/{c}/loss``, the BEV mAP at
``ap_iou_threshold`` (``{split}/{c}/bev_map``) and the footprint IoU averaged over classes (``{split}/{c}/seg_iou``).
"""

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torchmetrics.classification import MultilabelJaccardIndex

from ...metrics import ResetMetricsOnEvaluation
from ...schedules import warmup_cosine
from ..detect import BEVAveragePrecision
from .model import UniLION
from .seg_head import footprint_masks

COMBINATIONS = ("L", "LT", "LC", "LCT")


class UniLIONModule(ResetMetricsOnEvaluation, L.LightningModule):
    """Args: the ``UniLION`` options (``class_names`` gives the class count), the loss weights, the chances of
    training without the camera or the previous frame, AdamW's ``lr`` and ``weight_decay`` (a cosine schedule
    after ``warmup_fraction`` of the steps), and the BEV IoU of a true positive."""

    def __init__(
        self,
        model_cfg: dict[str, Any],
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        point_features: int = 4,
        camera_options: dict[str, Any] | None = None,
        max_gap: float = 2.0,
        bev_channels: Sequence[int] = (64, 128),
        bev_layers: Sequence[int] = (3, 5),
        bev_upsample_channels: int = 128,
        head_options: dict[str, Any] | None = None,
        seg_channels: int = 64,
        segmentation_weight: float = 1.0,
        depth_weight: float = 0.05,
        camera_dropout: float = 0.5,
        time_dropout: float = 0.5,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        ap_iou_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if not (0 <= camera_dropout <= 1 and 0 <= time_dropout <= 1):
            raise ValueError(f"dropout chances must be in [0, 1], got {camera_dropout}, {time_dropout}")
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.model = UniLION(
            model_cfg, len(self.class_names), point_cloud_range, voxel_size, point_features,
            camera_options=camera_options if camera_options is not None else {"backbone": "resnet10t"},
            temporal=True, max_gap=max_gap, bev_channels=bev_channels, bev_layers=bev_layers,
            bev_upsample_channels=bev_upsample_channels, head_options=head_options, seg_channels=seg_channels,
        )  # fmt: skip
        classes = len(self.class_names)
        keys = [f"{split}_{combo}" for split in ("val", "test") for combo in COMBINATIONS]
        self.average_precision = torch.nn.ModuleDict({k: BEVAveragePrecision(classes, ap_iou_threshold) for k in keys})
        self.segmentation_iou = torch.nn.ModuleDict(
            {k: MultilabelJaccardIndex(num_labels=classes, average="none") for k in keys}
        )

    @staticmethod
    def _inputs(frame: dict[str, Any], camera: bool, time: bool) -> dict[str, Any]:
        inputs = {"images": frame["image"], "cameras": frame["camera"]} if camera else {}
        if time:
            inputs.update(poses=frame["pose"], scenes=frame["scene"], times=frame["time"])
        return inputs

    def run(self, clip: dict[str, dict[str, Any]], camera: bool, time: bool) -> dict[str, Any]:
        """``UniLION``'s outputs on the clip's current frame with the chosen inputs."""
        self.model.temporal_tokens.reset()
        if time:
            with torch.no_grad():
                self.model.tokens(clip["previous"]["points"], **self._inputs(clip["previous"], camera, time))
        return self.model(clip["current"]["points"], **self._inputs(clip["current"], camera, time))

    def _masks(self, frame: dict[str, Any], shape: Sequence[int]) -> torch.Tensor:
        low_x, low_y, _, high_x, high_y, _ = self.hparams.point_cloud_range
        cell = [(high_x - low_x) / shape[1], (high_y - low_y) / shape[0]]
        return torch.stack(
            [
                footprint_masks(boxes, labels, len(self.class_names), self.hparams.point_cloud_range, cell, shape)
                for boxes, labels in zip(frame["boxes"], frame["labels"], strict=True)
            ]
        )

    def _loss(self, clip: dict, outputs: dict, camera: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The total loss and the footprint masks."""
        frame = clip["current"]
        loss, _ = self.model.detection_head.loss(outputs["detection"], frame["boxes"], frame["labels"])
        masks = self._masks(frame, outputs["segmentation"].shape[2:])
        loss = loss + self.hparams.segmentation_weight * self.model.segmentation_head.loss(
            outputs["segmentation"], masks
        )
        if camera:
            depth = self.model.camera_tokens.depth_loss(outputs["depth_logits"], frame["points"], frame["camera"])
            loss = loss + self.hparams.depth_weight * depth
        return loss, masks

    def training_step(self, clip: dict, batch_idx: int) -> torch.Tensor:
        draw = torch.rand(2, generator=torch.Generator().manual_seed(self.global_step))
        camera, time = bool(draw[0] >= self.hparams.camera_dropout), bool(draw[1] >= self.hparams.time_dropout)
        loss, _ = self._loss(clip, self.run(clip, camera, time), camera)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(clip["current"]["points"]))
        return loss

    def _evaluate(self, clip: dict, split: str) -> None:
        frame = clip["current"]
        for combo in COMBINATIONS:
            camera, time = "C" in combo, "T" in combo
            outputs = self.run(clip, camera, time)
            loss, masks = self._loss(clip, outputs, camera)
            self.log(f"{split}/{combo}/loss", loss, batch_size=len(frame["points"]))
            key = f"{split}_{combo}"
            detections = self.model.detection_head.decode(outputs["detection"])
            self.average_precision[key].update(detections, frame["boxes"], frame["labels"])
            logits = outputs["segmentation"].permute(0, 2, 3, 1).reshape(-1, len(self.class_names))
            self.segmentation_iou[key].update(logits.sigmoid(), masks.permute(0, 2, 3, 1).reshape(logits.shape).int())

    def validation_step(self, clip: dict, batch_idx: int) -> None:
        self._evaluate(clip, "val")

    def test_step(self, clip: dict, batch_idx: int) -> None:
        self._evaluate(clip, "test")

    def _log_metrics(self, split: str) -> None:
        for combo in COMBINATIONS:
            key = f"{split}_{combo}"
            per_class = self.average_precision[key].compute().reshape(-1)
            known = per_class[~per_class.isnan()]
            if len(known):
                self.log(f"{split}/{combo}/bev_map", known.mean())
            iou = self.segmentation_iou[key].compute()
            self.log(f"{split}/{combo}/seg_iou", iou.mean(), prog_bar=combo == "LCT")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        return {
            "optimizer": optimizer,
            "lr_scheduler": warmup_cosine(optimizer, total, math.ceil(hp.warmup_fraction * total)),
        }
