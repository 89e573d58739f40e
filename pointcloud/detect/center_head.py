"""A CenterPoint detection head on a BEV feature map (OpenPCDet's ``CenterHead``, one head for all classes).

From ``features [B, C, H, W]`` a shared 3x3 convolution feeds one small branch per output: the class heatmaps
(``num_classes`` logits, bias initialised to -2.19, i.e. a prior probability of 0.1), the centre offset within its
pixel (2), z (1, metres), the log size (3, log metres), the heading as (cos, sin) (2) and, optionally, the IoU of the
box with its target mapped to [-1, 1] (1). ``loss`` trains them against ``center_targets.assign_targets``;
``decode`` turns the maps into boxes in the LiDAR frame followed by rotated NMS.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .box_iou import iou_3d
from .center_targets import REGRESSION_CODE_SIZE, CenterTargets, assign_targets
from .nms import rotated_nms

HEATMAP_PRIOR_BIAS = -2.19
PROBABILITY_CLAMP = 1e-4
REGRESSION_BRANCHES = {"center": 2, "center_z": 1, "dim": 3, "rot": 2}


def focal_loss(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (OpenPCDet's ``FocalLossCenterNet``), a scalar.

    ``-(sum_pos (1 - p)^2 log p + sum_neg (1 - t)^4 p^2 log(1 - p)) / max(num_pos, 1)``, where the positives are the
    pixels whose target ``t`` is exactly 1 and the negatives all others; ``probabilities`` and ``target`` share a
    shape (e.g. ``[B, num_classes, H, W]``), probabilities strictly inside (0, 1).
    """
    positive = target.eq(1).to(probabilities.dtype)
    positive_loss = probabilities.log() * (1 - probabilities) ** 2 * positive
    negative_loss = (1 - probabilities).log() * probabilities**2 * (1 - target) ** 4 * (1 - positive)
    return -(positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp(min=1)


def _gather_pixels(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Values of ``maps [B, D, H, W]`` at the flattened pixels ``index [B, K]``: ``[B, K, D]``."""
    flat = maps.flatten(2)
    return torch.gather(flat, 2, index[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def _separate_branch(channels: int, out_channels: int, conv_layers: int) -> nn.Sequential:
    layers = []
    for _ in range(conv_layers - 1):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(channels, out_channels, 3, padding=1))


class CenterHead(nn.Module):
    """CenterPoint head: dense maps from a BEV feature map, their training loss, and box decoding.

    Args:
        in_channels: ``C`` of the BEV features.
        num_classes: heatmap channels; labels are class indices in ``[0, num_classes)``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``, metres.
        voxel_size: ``(v_x, v_y, v_z)``, metres.
        feature_map_stride: voxels per BEV pixel.
        shared_channels, branch_conv_layers: width of the shared convolution, convolutions per branch.
        with_iou: add the IoU branch (trained on the 3D IoU of the decoded box with its target, used to rectify
            scores by ``score^(1 - a) * iou^a`` with ``a = iou_rectifier[label]``).
        min_overlap, min_radius, max_objects: target assignment (``center_targets.assign_targets``).
        code_weights: weights of the 8 regression errors (offset 2, z, log size 3, cos, sin).
        classification_weight, localisation_weight, iou_weight: weights of the three loss terms.
        max_detections: heatmap peaks decoded per sample.
        score_threshold, nms_iou_threshold, nms_pre_max_size, nms_post_max_size: decoding's filtering.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        feature_map_stride: int = 1,
        shared_channels: int = 64,
        branch_conv_layers: int = 2,
        with_iou: bool = False,
        iou_rectifier: Sequence[float] | None = None,
        min_overlap: float = 0.1,
        min_radius: int = 2,
        max_objects: int = 500,
        code_weights: Sequence[float] = (1.0,) * REGRESSION_CODE_SIZE,
        classification_weight: float = 1.0,
        localisation_weight: float = 2.0,
        iou_weight: float = 1.0,
        max_detections: int = 500,
        score_threshold: float = 0.1,
        nms_iou_threshold: float = 0.7,
        nms_pre_max_size: int = 4096,
        nms_post_max_size: int = 500,
    ):
        super().__init__()
        if len(code_weights) != REGRESSION_CODE_SIZE:
            raise ValueError(f"code_weights must hold {REGRESSION_CODE_SIZE} numbers, got {list(code_weights)}")
        if iou_rectifier is not None and (not with_iou or len(iou_rectifier) != num_classes):
            raise ValueError(f"iou_rectifier needs with_iou and one number per class, got {iou_rectifier}")
        self.num_classes = num_classes
        self.point_cloud_range = tuple(point_cloud_range)
        self.voxel_size = tuple(voxel_size)
        self.feature_map_stride = feature_map_stride
        self.with_iou = with_iou
        self.iou_rectifier = None if iou_rectifier is None else tuple(iou_rectifier)
        self.min_overlap, self.min_radius, self.max_objects = min_overlap, min_radius, max_objects
        self.register_buffer("code_weights", torch.tensor(code_weights, dtype=torch.float32), persistent=False)
        self.classification_weight = classification_weight
        self.localisation_weight = localisation_weight
        self.iou_weight = iou_weight
        self.max_detections = max_detections
        self.score_threshold = score_threshold
        self.nms_iou_threshold = nms_iou_threshold
        self.nms_pre_max_size, self.nms_post_max_size = nms_pre_max_size, nms_post_max_size

        self.shared_conv = nn.Sequential(
            nn.Conv2d(in_channels, shared_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(shared_channels),
            nn.ReLU(),
        )
        outputs = {"heatmap": num_classes, **REGRESSION_BRANCHES, **({"iou": 1} if with_iou else {})}
        self.branches = nn.ModuleDict(
            {name: _separate_branch(shared_channels, size, branch_conv_layers) for name, size in outputs.items()}
        )
        for name, branch in self.branches.items():
            for module in branch.modules():
                if isinstance(module, nn.Conv2d) and name != "heatmap":
                    nn.init.kaiming_normal_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        nn.init.constant_(self.branches["heatmap"][-1].bias, HEATMAP_PRIOR_BIAS)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Maps ``[B, D, H, W]`` for ``features [B, C, H, W]``: ``heatmap`` (logits, D = num_classes), ``center``
        (2), ``center_z`` (1), ``dim`` (3), ``rot`` (2: cos, sin) and, with the IoU branch, ``iou`` (1)."""
        if features.ndim != 4:
            raise ValueError(f"features must be [B, C, H, W], got {tuple(features.shape)}")
        shared = self.shared_conv(features)
        return {name: branch(shared) for name, branch in self.branches.items()}

    def dense_boxes(self, predictions: dict[str, torch.Tensor]) -> torch.Tensor:
        """The box ``[B, H, W, 7]`` (LiDAR frame, metres, radians) that each pixel's regression describes.

        Pixel ``(u, v)`` with offset ``(o_x, o_y)`` has its centre at ``x = (u + o_x) v_x s + x_min`` (likewise y);
        sizes are ``exp`` of the log sizes (clamped to [-5, 5]); heading ``atan2(sin, cos)``.
        """
        center, rot = predictions["center"], predictions["rot"]
        _, _, height, width = center.shape
        cell_x = self.voxel_size[0] * self.feature_map_stride
        cell_y = self.voxel_size[1] * self.feature_map_stride
        columns = torch.arange(width, device=center.device, dtype=center.dtype)
        rows = torch.arange(height, device=center.device, dtype=center.dtype)
        x = (columns + center[:, 0]) * cell_x + self.point_cloud_range[0]
        y = (rows[:, None] + center[:, 1]) * cell_y + self.point_cloud_range[1]
        size = predictions["dim"].clamp(-5, 5).exp()
        heading = torch.atan2(rot[:, 1], rot[:, 0])
        return torch.stack([x, y, predictions["center_z"][:, 0], *size.unbind(1), heading], dim=-1)

    def loss(
        self, predictions: dict[str, torch.Tensor], boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts for the maps of ``forward`` and one ``boxes [M_b, 7]``, ``labels [M_b]`` per sample.

        ``classification_weight * focal`` + ``localisation_weight * sum_c code_weights[c] L1_c`` (the L1 error of
        code ``c`` summed over objects, divided by their number) + ``iou_weight * L1(iou, 2 IoU_3D - 1)``.
        """
        heatmap = predictions["heatmap"]
        targets = assign_targets(
            boxes,
            labels,
            self.num_classes,
            tuple(heatmap.shape[2:]),
            self.point_cloud_range,
            self.voxel_size,
            self.feature_map_stride,
            self.max_objects,
            self.min_overlap,
            self.min_radius,
        )
        probabilities = heatmap.sigmoid().clamp(PROBABILITY_CLAMP, 1 - PROBABILITY_CLAMP)
        classification = focal_loss(probabilities, targets.heatmap)
        regression_maps = torch.cat([predictions[name] for name in REGRESSION_BRANCHES], dim=1)
        regression = _gather_pixels(regression_maps, targets.index)
        mask = targets.mask[..., None].to(regression.dtype)
        per_code = ((regression - targets.regression).abs() * mask).sum(dim=(0, 1)) / mask.sum().clamp(min=1)
        localisation = (per_code * self.code_weights).sum()
        parts = {"heatmap": classification, "regression": localisation}
        total = self.classification_weight * classification + self.localisation_weight * localisation
        if self.with_iou:
            parts["iou"] = self._iou_loss(predictions, targets)
            total = total + self.iou_weight * parts["iou"]
        return total, parts

    def _iou_loss(self, predictions: dict[str, torch.Tensor], targets: CenterTargets) -> torch.Tensor:
        """L1 between the IoU branch and ``2 IoU_3D - 1`` of the (detached) decoded boxes at the object pixels."""
        if not targets.mask.any():
            return predictions["iou"].sum() * 0
        boxes = self.dense_boxes({name: value.detach() for name, value in predictions.items()})
        boxes = _gather_pixels(boxes.permute(0, 3, 1, 2), targets.index)[targets.mask]
        predicted_iou = _gather_pixels(predictions["iou"], targets.index)[targets.mask][:, 0]
        iou_target = iou_3d(boxes, targets.boxes[targets.mask], aligned=True) * 2 - 1
        return F.l1_loss(predicted_iou, iou_target, reduction="sum") / targets.mask.sum()

    @torch.no_grad()
    def decode(self, predictions: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections per sample: ``{"boxes": [K, 7], "scores": [K], "labels": [K]}``, highest score first.

        Heatmap peaks (pixels equal to the max of their 3x3 neighbourhood) are ranked over all classes; the top
        ``max_detections`` above ``score_threshold`` are decoded (``dense_boxes``), their scores rectified by the
        IoU branch when configured, and filtered by class-agnostic rotated NMS.
        """
        heat = predictions["heatmap"].sigmoid()
        batch_size, num_classes, height, width = heat.shape
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        scores, flat = peaks.flatten(1).topk(min(self.max_detections, num_classes * height * width), dim=1)
        labels, pixels = flat // (height * width), flat % (height * width)
        boxes = _gather_pixels(self.dense_boxes(predictions).permute(0, 3, 1, 2), pixels)
        passing = scores > self.score_threshold
        if self.iou_rectifier is not None:
            iou = ((_gather_pixels(predictions["iou"], pixels)[..., 0] + 1) / 2).clamp(0, 1)
            power = heat.new_tensor(self.iou_rectifier)[labels]
            scores = scores ** (1 - power) * iou**power
        detections = []
        for sample in range(batch_size):
            sample_boxes, sample_scores = boxes[sample][passing[sample]], scores[sample][passing[sample]]
            sample_labels = labels[sample][passing[sample]]
            keep = rotated_nms(
                sample_boxes, sample_scores, self.nms_iou_threshold, self.nms_pre_max_size, self.nms_post_max_size
            )
            detections.append(
                {"boxes": sample_boxes[keep], "scores": sample_scores[keep], "labels": sample_labels[keep]}
            )
        return detections
