"""``LIONDetector``: LION's voxel backbone with a CenterPoint head, trained and evaluated on point-cloud scenes.

Evaluation: ``BEVAveragePrecision`` (bird's-eye-view AP at one IoU threshold per class) on every scene, and KITTI's
official ``KittiAP`` (R40, BEV and 3D, per difficulty) on scenes that carry KITTI annotations.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..metrics import ResetMetricsOnEvaluation
from .backbone import LION3DBackbone, height_compression
from .bev_backbone import BEVBackbone
from .detect import BEVAveragePrecision, CenterHead, KittiAP
from .detect.kitti_ap import DIFFICULTIES, METRICS, MIN_OVERLAP
from .plots import plot_bev
from .voxelize import grid_size, voxelize


class LIONDetector(ResetMetricsOnEvaluation, L.LightningModule):
    """LION 3D detector: points -> voxels -> ``LION3DBackbone`` -> height compression -> ``BEVBackbone`` ->
    ``CenterHead``.

    Batches are ``data.collate_scenes``'s ``{"points": B x [P_b, point_features], "boxes": B x [M_b, 7], "labels":
    B x [M_b]}``. Points are voxelised (``voxelize``: the mean of each voxel's points) on ``point_cloud_range`` and
    ``voxel_size``; the BEV map keeps the voxel grid's x-y resolution (feature-map stride 1). Training minimises
    ``CenterHead.loss`` (focal heatmap loss plus L1 box regression on ``assign_targets``'s targets); validation and
    test log the same loss, decode boxes (``CenterHead.decode``: peaks, rotated NMS) and score them with
    ``BEVAveragePrecision`` at ``ap_iou_threshold`` (``{split}/bev_ap/<class>`` and their mean ``{split}/bev_map``,
    over classes with true boxes). With ``kitti_ap``, batches that carry KITTI annotations (``batch["kitti"]``, one
    ``KittiAP`` target dict per scene: ``boxes``, ``names``, ``heights``, ``occlusion``, ``truncation``, as
    ``PointCloudDataModule(source="kitti")`` gives its validation and test splits) are also scored by ``KittiAP``
    for the detector's classes among Car, Pedestrian and Cyclist: ``{split}/kitti/<class>_<bev|3d>_<difficulty>``
    (percent, e.g. ``val/kitti/Car_3d_moderate``) and the mean over classes ``{split}/kitti/mAP_<bev|3d>_<difficulty>``,
    each where some ground truth counts. Detections carry no 2D box height, so ``KittiAP`` never ignores one for
    being too low in the image. Batches without annotations (synthetic scenes) get ``BEVAveragePrecision`` only.
    The LION paper trains its KITTI models with OpenPCDet's SECOND anchor head; this detector uses CenterPoint's
    head, as LION's Waymo and ONCE models do.

    The test's first scene is drawn to ``bev.png`` in the logger's folder (``plots.plot_bev``: points from above,
    true boxes green, predicted red).

    Edge cases: a scene with no true boxes trains on the heatmap loss alone (all negatives) and counts no targets
    in the AP; a scene with no point inside the range (an empty cloud, or every point outside) is a blank BEV map
    (the backbone sees no voxel of it), trains like any other and gets no detection (``detect``); in a batch of only
    such scenes the 3D backbone is skipped (it gets no gradient from that batch) and every map is blank.

    Args:
        model_cfg: ``LION3DBackbone``'s config as a plain dict (OpenPCDet keys, e.g. ``FEATURE_DIM``, ``DEPTHS``).
        class_names: detected classes, in label order.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``, metres.
        voxel_size: ``(v_x, v_y, v_z)``, metres.
        point_features: columns of each point (x, y, z and the rest: 4 with intensity).
        bev_channels, bev_layers, bev_upsample_channels: ``BEVBackbone``'s widths and depths.
        head_options: further ``CenterHead`` arguments (``shared_channels``, ``score_threshold``, ...).
        lr: peak AdamW learning rate; weight_decay: AdamW's decoupled weight decay.
        warmup_fraction, initial_lr_ratio: OpenPCDet's one-cycle shape: the rate rises from ``initial_lr_ratio *
            lr`` to ``lr`` over the first ``warmup_fraction`` of the steps (half cosine), then falls to 0 (half
            cosine). The momentum is not cycled.
        ap_iou_threshold: BEV IoU of a true positive of ``BEVAveragePrecision``.
        kitti_ap: score batches that carry KITTI annotations with ``KittiAP`` too (False skips it: it matches
            frames in a Python loop on the CPU, which takes a while on a full validation split). It has no effect
            when no class is Car, Pedestrian or Cyclist.
    """

    def __init__(
        self,
        model_cfg: dict[str, Any],
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        point_features: int = 4,
        bev_channels: Sequence[int] = (64, 128),
        bev_layers: Sequence[int] = (3, 5),
        bev_upsample_channels: int = 128,
        head_options: dict[str, Any] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.4,
        initial_lr_ratio: float = 0.1,
        ap_iou_threshold: float = 0.5,
        kitti_ap: bool = True,
    ) -> None:
        super().__init__()
        if point_features < 3:
            raise ValueError(f"point_features counts x, y, z and any extra columns: at least 3, got {point_features}")
        if not class_names:
            raise ValueError("class_names must name at least one class")
        if not 0 <= warmup_fraction < 1 or not 0 < initial_lr_ratio <= 1:
            raise ValueError(
                f"need warmup_fraction in [0, 1) and initial_lr_ratio in (0, 1], got {warmup_fraction}, "
                f"{initial_lr_ratio}"
            )
        self.save_hyperparameters()
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        self.class_names = list(class_names)
        self.backbone = LION3DBackbone(
            model_cfg, point_features, grid_size(self.point_cloud_range, self.voxel_size), voxel_size, point_cloud_range
        )
        self.bev_backbone = BEVBackbone(self.backbone.num_bev_features, bev_channels, bev_layers, bev_upsample_channels)
        self.head = CenterHead(
            self.bev_backbone.out_channels,
            len(self.class_names),
            self.point_cloud_range,
            self.voxel_size,
            feature_map_stride=1,
            **(head_options or {}),
        )
        self.average_precision = torch.nn.ModuleDict(
            {split: BEVAveragePrecision(len(self.class_names), ap_iou_threshold) for split in ("val", "test")}
        )
        kitti_classes = [name for name in self.class_names if name.lower() in MIN_OVERLAP]
        self.kitti_average_precision = (
            torch.nn.ModuleDict({split: KittiAP(kitti_classes) for split in ("val", "test")})
            if kitti_ap and kitti_classes
            else None
        )
        self._first_test_scene: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, points: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``CenterHead``'s maps ``[B, D, H, W]`` for ``B`` clouds ``[P_b, point_features]``."""
        if not points:
            raise ValueError("points must be a non-empty list of clouds [P, point_features]")
        features, coords = voxelize(list(points), self.point_cloud_range, self.voxel_size)
        if len(features):
            batch = {"voxel_features": features, "voxel_coords": coords, "batch_size": len(points)}
            bev = height_compression(self.backbone(batch)["encoded_spconv_tensor"])
        else:
            _, height, width = self.backbone.output_spatial_shape
            bev = features.new_zeros(len(points), self.backbone.num_bev_features, height, width)
        return self.head(self.bev_backbone(bev))

    def _loss(self, batch: dict[str, list[torch.Tensor]], split: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        predictions = self(batch["points"])
        loss, parts = self.head.loss(predictions, batch["boxes"], batch["labels"])
        on_step, size = split == "train", len(batch["points"])
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"{split}/{name}_loss", value, on_step=on_step, on_epoch=not on_step, batch_size=size)
        return loss, predictions

    def training_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")[0]

    def _decode(
        self, points: Sequence[torch.Tensor], predictions: dict[str, torch.Tensor]
    ) -> list[dict[str, torch.Tensor]]:
        """``CenterHead.decode``, with no detection for a cloud that has no point inside ``point_cloud_range``."""
        low, high = self.point_cloud_range[:3], self.point_cloud_range[3:]
        detections = self.head.decode(predictions)
        for index, cloud in enumerate(points):
            xyz = cloud[:, :3]
            if not ((xyz >= xyz.new_tensor(low)) & (xyz < xyz.new_tensor(high))).all(dim=1).any():
                detections[index] = {key: value[:0] for key, value in detections[index].items()}
        return detections

    @torch.no_grad()
    def detect(self, points: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Boxes per cloud, ``{"boxes": [K, 7], "scores": [K], "labels": [K]}`` (LiDAR frame), highest score first;
        none for a cloud without a point inside ``point_cloud_range``. Call in eval mode."""
        return self._decode(points, self(points))

    def _evaluate(self, batch: dict[str, list[torch.Tensor]], split: str) -> list[dict[str, torch.Tensor]]:
        _, predictions = self._loss(batch, split)
        detections = self._decode(batch["points"], predictions)
        self.average_precision[split].update(detections, batch["boxes"], batch["labels"])
        if self.kitti_average_precision is not None and "kitti" in batch:
            named = [
                {**detection, "labels": [self.class_names[label] for label in detection["labels"].tolist()]}
                for detection in detections
            ]
            self.kitti_average_precision[split].update(named, batch["kitti"])
        return detections

    def validation_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, list[torch.Tensor]], batch_idx: int) -> None:
        detections = self._evaluate(batch, "test")
        if batch_idx == 0:
            self._first_test_scene = (batch["points"][0].cpu(), batch["boxes"][0].cpu(), detections[0]["boxes"].cpu())

    def _log_average_precision(self, split: str) -> None:
        metric = self.average_precision[split]
        per_class = metric.compute().reshape(-1)  # torchmetrics squeezes a one-class result to a scalar
        known = ~per_class.isnan()
        for name, value in zip(self.class_names, per_class.tolist(), strict=True):
            if not math.isnan(value):
                self.log(f"{split}/bev_ap/{name}", value)
        if known.any():
            self.log(f"{split}/bev_map", per_class[known].mean(), prog_bar=True)

    def _log_kitti_ap(self, split: str) -> None:
        if self.kitti_average_precision is None or not self.kitti_average_precision[split].update_count:
            return
        metric = self.kitti_average_precision[split]
        results = metric.compute()  # {"Car/3d/moderate": AP, ...}, NaN without counted ground truth
        for metric_name in METRICS:
            for level in DIFFICULTIES:
                known = []
                for name in metric.classes:
                    value = results[f"{name}/{metric_name}/{level}"]
                    if not math.isnan(value):
                        self.log(f"{split}/kitti/{name}_{metric_name}_{level}", value)
                        known.append(value)
                if known:
                    self.log(f"{split}/kitti/mAP_{metric_name}_{level}", sum(known) / len(known))

    def on_validation_epoch_end(self) -> None:
        self._log_average_precision("val")
        self._log_kitti_ap("val")

    def on_test_epoch_end(self) -> None:
        self._log_average_precision("test")
        self._log_kitti_ap("test")
        scene, self._first_test_scene = self._first_test_scene, None
        log_dir = self.logger.log_dir if self.logger is not None else None
        if scene is not None and log_dir is not None and self.trainer.is_global_zero:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            plot_bev(*scene, Path(log_dir) / "bev.png", self.point_cloud_range)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = hp.warmup_fraction * total

        def factor(step: int) -> float:
            if step < warmup:
                return hp.initial_lr_ratio + (1 - hp.initial_lr_ratio) * (1 - math.cos(math.pi * step / warmup)) / 2
            return (1 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0))) / 2

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
