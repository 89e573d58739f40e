"""``BEVAveragePrecision``: average precision of rotated BEV boxes at one IoU threshold, per class, as a
torchmetrics metric (greedy matching per scene, 40-point interpolated recall; not KITTI's official protocol)."""

import math
from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .box_iou import bev_iou


class BEVAveragePrecision(Metric):
    """Average precision of rotated BEV boxes per class, at one IoU threshold, over every scene seen by ``update``.

    In each scene and for each class, detections are taken by decreasing score and each is matched to the unmatched
    true box of its class with the highest BEV IoU (``detect.bev_iou``); it is a true positive when that IoU is at
    least ``iou_threshold``. Over all scenes, with detections ranked by score, ``AP = (1 / R) sum_{r = 1/R .. 1}
    max{precision_k : recall_k >= r}`` (0 where the recall is never reached), ``R = recall_points`` (40, as KITTI's
    R40 interpolation). This is *not* KITTI's official benchmark: no difficulty levels (box height, occlusion,
    truncation), no ``DontCare`` regions, no 3D or orientation scores. ``compute`` returns ``[num_classes]``,
    ``NaN`` for a class with no true box.
    """

    full_state_update = False

    def __init__(self, num_classes: int, iou_threshold: float = 0.5, recall_points: int = 40) -> None:
        super().__init__()
        if num_classes < 1 or not 0 < iou_threshold <= 1 or recall_points < 1:
            raise ValueError(
                f"need num_classes >= 1, iou_threshold in (0, 1], recall_points >= 1; got {num_classes}, "
                f"{iou_threshold}, {recall_points}"
            )
        self.num_classes, self.iou_threshold, self.recall_points = num_classes, iou_threshold, recall_points
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("true_positive", default=[], dist_reduce_fx="cat")
        self.add_state("num_targets", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def _match(self, boxes: torch.Tensor, labels: torch.Tensor, true_boxes: torch.Tensor, true_labels: torch.Tensor):
        """True-positive flags ``[K]`` of one scene's detections, given in decreasing score order."""
        true_positive = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
        for label in labels.unique().tolist():
            detections = (labels == label).nonzero().flatten()
            targets = (true_labels == label).nonzero().flatten()
            if not len(targets):
                continue
            iou = bev_iou(boxes[detections].float(), true_boxes[targets].float())
            taken = torch.zeros(len(targets), dtype=torch.bool, device=boxes.device)
            for row, detection in enumerate(detections.tolist()):
                overlap = iou[row].masked_fill(taken, -1.0)
                best = int(overlap.argmax())
                if overlap[best] >= self.iou_threshold:
                    taken[best] = True
                    true_positive[detection] = True
        return true_positive

    def update(
        self,
        detections: Sequence[dict[str, torch.Tensor]],
        true_boxes: Sequence[torch.Tensor],
        true_labels: Sequence[torch.Tensor],
    ) -> None:
        """One batch: per scene, ``{"boxes": [K, 7], "scores": [K], "labels": [K]}`` (as ``CenterHead.decode``
        gives), the true ``boxes [M, 7]`` and ``labels [M]``."""
        if not len(detections) == len(true_boxes) == len(true_labels):
            raise ValueError(
                f"detections, true_boxes and true_labels need one entry per scene, got {len(detections)}, "
                f"{len(true_boxes)}, {len(true_labels)}"
            )
        for detection, boxes, labels in zip(detections, true_boxes, true_labels, strict=True):
            self.num_targets += torch.bincount(labels.long(), minlength=self.num_classes)[: self.num_classes]
            order = detection["scores"].argsort(descending=True)
            predicted_labels = detection["labels"][order].long()
            self.scores.append(detection["scores"][order].float())
            self.labels.append(predicted_labels)
            self.true_positive.append(self._match(detection["boxes"][order], predicted_labels, boxes, labels.long()))

    def compute(self) -> torch.Tensor:
        device = self.num_targets.device
        scores = dim_zero_cat(self.scores) if self.scores else torch.zeros(0, device=device)
        labels = dim_zero_cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.long, device=device)
        hits = (
            dim_zero_cat(self.true_positive) if self.true_positive else torch.zeros(0, dtype=torch.bool, device=device)
        )
        recall_levels = torch.arange(1, self.recall_points + 1, device=device) / self.recall_points
        precision_sums = torch.full((self.num_classes,), math.nan, device=device)
        for label in range(self.num_classes):
            if self.num_targets[label] == 0:
                continue
            mine = labels == label
            ranked_hits = hits[mine][scores[mine].argsort(descending=True)].float()
            found = ranked_hits.cumsum(0)
            precision = found / torch.arange(1, len(found) + 1, device=device)
            recall = found / self.num_targets[label]
            best_after = precision.flip(0).cummax(0).values.flip(0)  # max precision at this rank or later
            first_rank = torch.searchsorted(recall, recall_levels - 1e-9)
            reached = first_rank < len(recall)
            padded = torch.cat([best_after, best_after.new_zeros(1)])
            precision_sums[label] = torch.where(reached, padded[first_rank.clamp(max=len(recall))], 0.0).mean()
        return precision_sums
