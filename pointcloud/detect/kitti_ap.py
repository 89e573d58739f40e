"""``KittiAP``: KITTI's official 3D-object average precision (R40) for BEV and 3D boxes, as a torchmetrics metric.

It follows the KITTI devkit (``evaluate_object_3d_offline.cpp``) as re-implemented by ``kitti_object_eval_python``
(OpenPCDet, second.pytorch): difficulty levels from the 2D box height, occlusion and truncation of each ground
truth; neighbouring classes (``Van`` for ``Car``, ``Person_sitting`` for ``Pedestrian``) and ground truths outside the
difficulty are *ignored* (a detection matched to them is neither true nor false positive, and they are never
missed); detections lower than the difficulty's minimum 2D height are ignored; detections in ``DontCare`` regions
are not false positives; the score thresholds are drawn from the true positives' scores (``get_thresholds``, 41
sample points) and ``AP_R40 = 100 / 40 * sum_{i = 1..40} max_{j >= i} precision_j``.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from .box_iou import bev_intersection_area, bev_iou, iou_3d

DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)  # pixels, of the 2D box; ground truth must be taller, detections at least as tall
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
MIN_OVERLAP = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5}  # official thresholds, the same for BEV and 3D
NEIGHBOUR_CLASS = {"car": "van", "pedestrian": "person_sitting"}
KITTI_NAMES = ("car", "van", "truck", "pedestrian", "person_sitting", "cyclist", "tram", "misc", "dontcare")
DONT_CARE = KITTI_NAMES.index("dontcare")
NUM_SAMPLE_POINTS = 41
METRICS = ("bev", "3d")


def _name_code(name: str) -> int:
    """Index of a KITTI class name in ``KITTI_NAMES`` (case-insensitive), -1 for any other name."""
    name = name.lower()
    return KITTI_NAMES.index(name) if name in KITTI_NAMES else -1


def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_points: int = NUM_SAMPLE_POINTS) -> np.ndarray:
    """The devkit's score thresholds: walking the true positives' scores from the highest, keep a score each time
    its recall gets (nearest) to the next of the ``num_sample_points - 1`` steps of ``1 / (num_sample_points - 1)``;
    the last score is always kept."""
    scores = np.sort(scores)[::-1]
    current_recall, thresholds = 0.0, []
    for i, score in enumerate(scores):
        last = i == len(scores) - 1
        left_recall = (i + 1) / num_gt
        right_recall = left_recall if last else (i + 2) / num_gt
        if right_recall - current_recall < current_recall - left_recall and not last:
            continue
        thresholds.append(score)
        current_recall += 1 / (num_sample_points - 1.0)
    return np.asarray(thresholds, dtype=np.float64)


def _statistics(
    overlaps: np.ndarray,
    scores: np.ndarray,
    ignored_gt: np.ndarray,
    ignored_det: np.ndarray,
    dont_care: np.ndarray,
    min_overlap: float,
    threshold: float | None,
) -> tuple[int, int, int, list[float]]:
    """Matching in one frame, the devkit's ``computeStatistics``: ``(tp, fp, fn, true positives' scores)``.

    ``overlaps`` ``[K, M]`` (detections x ground truths); ``ignored_gt`` / ``ignored_det`` are 0 (counted),
    1 (ignored) or -1 (other class); ``dont_care`` ``[K, D]`` is each detection's overlap with each ``DontCare``
    region as a fraction of the detection. With ``threshold is None`` (the first pass, which gathers the scores
    for ``get_thresholds``) each ground truth takes the highest-scored overlapping detection and false positives
    are not counted; otherwise detections scored below ``threshold`` are dropped, each ground truth, in order, takes
    the unassigned counted detection of highest overlap (an ignored one only when no counted one overlaps), and
    unassigned counted detections are false positives unless they overlap a ``DontCare`` region.
    """
    num_det, num_gt = overlaps.shape
    compute_fp = threshold is not None
    usable = ignored_det != -1
    if compute_fp:
        usable = usable & (scores >= threshold)
    assigned = np.zeros(num_det, dtype=bool)
    tp = fn = 0
    tp_scores: list[float] = []
    for i in range(num_gt):
        if ignored_gt[i] == -1:
            continue
        candidates = np.flatnonzero(usable & ~assigned & (overlaps[:, i] > min_overlap))
        pick = -1
        if candidates.size:
            if not compute_fp:
                pick = int(candidates[np.argmax(scores[candidates])])
            else:
                counted = candidates[ignored_det[candidates] == 0]
                if counted.size:
                    pick = int(counted[np.argmax(overlaps[counted, i])])
                else:
                    pick = int(candidates[0])
        if pick < 0:
            fn += int(ignored_gt[i] == 0)
        elif ignored_gt[i] == 1 or ignored_det[pick] == 1:
            assigned[pick] = True
        else:
            tp += 1
            tp_scores.append(float(scores[pick]))
            assigned[pick] = True
    fp = 0
    if compute_fp:
        unassigned = usable & ~assigned & (ignored_det == 0)
        fp = int(unassigned.sum())
        # Detections left over that lie in a DontCare region are not false positives (each region, in turn, claims
        # every such detection it overlaps by more than the class's minimum overlap).
        for d in range(dont_care.shape[1]):
            stuff = unassigned & (dont_care[:, d] > min_overlap)
            fp -= int(stuff.sum())
            unassigned &= ~stuff
    return tp, fp, fn, tp_scores


class KittiAP(Metric):
    """KITTI's official 3D-detection average precision, R40, in BEV and 3D, per class and difficulty, in percent.

    ``update(preds, target)`` takes one dict per frame. ``target``: ``"boxes"`` ``[M, 7]`` (LiDAR frame: x, y, z,
    dx, dy, dz, heading; z the box centre), ``"names"`` (``M`` KITTI class names: ``Car``, ``Van``, ``Pedestrian``,
    ``Person_sitting``, ``Cyclist``, ``DontCare``, ...; case-insensitive), ``"heights"`` ``[M]`` (2D box height in
    pixels), ``"occlusion"`` ``[M]`` (0..3) and ``"truncation"`` ``[M]`` (0..1). ``preds``: ``"boxes"`` ``[K, 7]``,
    ``"labels"`` (``K`` class names, or ids into ``classes``, as a sequence or tensor), ``"scores"`` ``[K]`` and
    optionally ``"heights"`` ``[K]`` (2D box height in pixels). When the detections' heights are missing or
    ``None``, detections are never ignored for being too low (the devkit ignores those under the difficulty's
    minimum height).

    ``DontCare`` regions: the devkit compares a detection with a ``DontCare`` region by their *image* boxes; with
    no image boxes here, the ``DontCare`` ground truths' 3D boxes are used instead, in the metric's own geometry
    (BEV area, or volume, of the intersection over the detection's). KITTI's labels give ``DontCare`` dummy 3D
    boxes (dimensions -1), which therefore claim nothing, as in ``kitti_object_eval_python`` for BEV and 3D.

    ``compute`` returns ``{"Car/3d/moderate": AP, "Car/bev/easy": AP, ...}`` (floats, percent), ``NaN`` where the
    class has no counted ground truth at that difficulty. The matching is per frame in Python/NumPy loops, on CPU.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"), **kwargs) -> None:
        super().__init__(**kwargs)
        unknown = [name for name in classes if name.lower() not in MIN_OVERLAP]
        if unknown or not classes:
            raise ValueError(f"classes must be among Car, Pedestrian, Cyclist; got {list(classes)}")
        self.classes = tuple(classes)
        for name in (
            "gt_boxes",
            "gt_codes",
            "gt_heights",
            "gt_occlusion",
            "gt_truncation",
            "det_boxes",
            "det_codes",
            "det_scores",
            "det_heights",
        ):
            # One tensor per frame; no reduction, so the frames stay apart when states are gathered.
            self.add_state(name, default=[], dist_reduce_fx=None)

    def _codes(self, labels, count: int) -> torch.Tensor:
        if isinstance(labels, torch.Tensor) and labels.dtype != torch.bool and not labels.is_floating_point():
            ids = labels.reshape(-1).tolist()
            if any(not 0 <= i < len(self.classes) for i in ids):
                raise ValueError(f"label ids must be in [0, {len(self.classes)}); got {ids}")
            names = [self.classes[i] for i in ids]
        else:
            names = [self.classes[int(x)] if not isinstance(x, str) else x for x in labels]
        if len(names) != count:
            raise ValueError(f"expected {count} labels, got {len(names)}")
        return torch.tensor([_name_code(n) for n in names], dtype=torch.long, device=self.device)

    def update(self, preds: Sequence[dict], target: Sequence[dict]) -> None:
        """Add frames: ``preds[i]`` and ``target[i]`` describe frame ``i`` (see the class docstring)."""
        if len(preds) != len(target):
            raise ValueError(f"preds and target must list the same frames; got {len(preds)} and {len(target)}")
        for pred, gt in zip(preds, target, strict=True):
            gt_boxes = torch.as_tensor(gt["boxes"], dtype=torch.float64, device=self.device).reshape(-1, 7)
            num_gt = gt_boxes.shape[0]
            gt_fields = [
                torch.as_tensor(gt[key], dtype=torch.float64, device=self.device).reshape(-1)
                for key in ("heights", "occlusion", "truncation")
            ]
            if any(f.shape[0] != num_gt for f in gt_fields) or len(gt["names"]) != num_gt:
                raise ValueError(f"target fields must all describe the {num_gt} boxes")
            det_boxes = torch.as_tensor(pred["boxes"], dtype=torch.float64, device=self.device).reshape(-1, 7)
            num_det = det_boxes.shape[0]
            scores = torch.as_tensor(pred["scores"], dtype=torch.float64, device=self.device).reshape(-1)
            heights = pred.get("heights")
            if heights is None:
                heights = torch.full((num_det,), math.nan, dtype=torch.float64, device=self.device)
            heights = torch.as_tensor(heights, dtype=torch.float64, device=self.device).reshape(-1)
            if scores.shape[0] != num_det or heights.shape[0] != num_det:
                raise ValueError(f"preds fields must all describe the {num_det} boxes")
            self.gt_boxes.append(gt_boxes)
            self.gt_codes.append(
                torch.tensor([_name_code(n) for n in gt["names"]], dtype=torch.long, device=self.device)
            )
            self.gt_heights.append(gt_fields[0])
            self.gt_occlusion.append(gt_fields[1])
            self.gt_truncation.append(gt_fields[2])
            self.det_boxes.append(det_boxes)
            self.det_codes.append(self._codes(pred["labels"], num_det))
            self.det_scores.append(scores)
            self.det_heights.append(heights)

    @staticmethod
    def _overlaps(det: torch.Tensor, gt: torch.Tensor, dont_care: torch.Tensor) -> dict[str, tuple]:
        """Per metric: (IoU ``[K, M]`` with the ground truths, overlap ``[K, D]`` with DontCare over the detection)."""
        num_det = det.shape[0]
        out = {}
        for metric in METRICS:
            iou = torch.zeros(num_det, gt.shape[0], dtype=torch.float64)
            if num_det and gt.shape[0]:
                iou = (bev_iou if metric == "bev" else iou_3d)(det, gt)
            dc = torch.zeros(num_det, dont_care.shape[0], dtype=torch.float64)
            if num_det and dont_care.shape[0]:
                inter = bev_intersection_area(det, dont_care)
                size = det[:, 3] * det[:, 4]
                if metric == "3d":
                    top = torch.minimum(
                        det[:, None, 2] + det[:, None, 5] / 2, dont_care[None, :, 2] + dont_care[:, 5] / 2
                    )
                    bottom = torch.maximum(
                        det[:, None, 2] - det[:, None, 5] / 2, dont_care[None, :, 2] - dont_care[:, 5] / 2
                    )
                    inter = inter * (top - bottom).clamp(min=0)
                    size = size * det[:, 5]
                dc = inter / size[:, None].clamp(min=torch.finfo(torch.float64).eps)
            out[metric] = (iou.cpu().numpy(), dc.cpu().numpy())
        return out

    def compute(self) -> dict[str, float]:
        """``{"<Class>/<bev|3d>/<easy|moderate|hard>": AP_R40 in percent}``; ``NaN`` with no counted ground truth."""
        frames = []
        for f in range(len(self.gt_boxes)):
            gt_boxes, gt_codes = self.gt_boxes[f].cpu(), self.gt_codes[f].cpu()
            dont_care_mask = gt_codes == DONT_CARE
            dont_care = gt_boxes[dont_care_mask].clone()
            dont_care[:, 3:6] = dont_care[:, 3:6].clamp(min=0)  # KITTI's DontCare carry dummy sizes (-1)
            gt_boxes = gt_boxes.clone()
            gt_boxes[dont_care_mask, 3:6] = gt_boxes[dont_care_mask, 3:6].clamp(min=1e-6)  # never matched anyway
            det_boxes = self.det_boxes[f].cpu()
            frames.append(
                {
                    "overlaps": self._overlaps(det_boxes, gt_boxes, dont_care),
                    "gt_codes": gt_codes.numpy(),
                    "gt_heights": self.gt_heights[f].cpu().numpy(),
                    "gt_occlusion": self.gt_occlusion[f].cpu().numpy(),
                    "gt_truncation": self.gt_truncation[f].cpu().numpy(),
                    "det_codes": self.det_codes[f].cpu().numpy(),
                    "det_scores": self.det_scores[f].cpu().numpy(),
                    "det_heights": self.det_heights[f].cpu().numpy(),
                }
            )
        result = {}
        for name in self.classes:
            for metric in METRICS:
                for difficulty, level in enumerate(DIFFICULTIES):
                    result[f"{name}/{metric}/{level}"] = self._average_precision(
                        frames, name.lower(), metric, difficulty
                    )
        return result

    @staticmethod
    def _ignored(frame: dict, name: str, difficulty: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The devkit's ``clean_data``: ``(ignored_gt, ignored_det, number of counted ground truths)``."""
        code = KITTI_NAMES.index(name)
        neighbour = KITTI_NAMES.index(NEIGHBOUR_CLASS[name]) if name in NEIGHBOUR_CLASS else -2
        codes = frame["gt_codes"]
        outside = (
            (frame["gt_occlusion"] > MAX_OCCLUSION[difficulty])
            | (frame["gt_truncation"] > MAX_TRUNCATION[difficulty])
            | (frame["gt_heights"] <= MIN_HEIGHT[difficulty])
        )
        ignored_gt = np.full(codes.shape, -1, dtype=np.int64)
        ignored_gt[(codes == neighbour) | ((codes == code) & outside)] = 1
        ignored_gt[(codes == code) & ~outside] = 0
        ignored_det = np.where(frame["det_codes"] == code, 0, -1)
        ignored_det[frame["det_heights"] < MIN_HEIGHT[difficulty]] = 1  # NaN (unknown height) compares False
        return ignored_gt, ignored_det, int((ignored_gt == 0).sum())

    def _average_precision(self, frames: list[dict], name: str, metric: str, difficulty: int) -> float:
        min_overlap = MIN_OVERLAP[name]
        cleaned = [self._ignored(frame, name, difficulty) for frame in frames]
        num_valid_gt = sum(c[2] for c in cleaned)
        if num_valid_gt == 0:
            return math.nan
        scores: list[float] = []
        for frame, (ignored_gt, ignored_det, _) in zip(frames, cleaned, strict=True):
            iou, dc = frame["overlaps"][metric]
            scores += _statistics(iou, frame["det_scores"], ignored_gt, ignored_det, dc, min_overlap, None)[3]
        thresholds = get_thresholds(np.asarray(scores, dtype=np.float64), num_valid_gt)[:NUM_SAMPLE_POINTS]
        precision = np.zeros(NUM_SAMPLE_POINTS)
        for t, threshold in enumerate(thresholds):
            tp = fp = 0
            for frame, (ignored_gt, ignored_det, _) in zip(frames, cleaned, strict=True):
                iou, dc = frame["overlaps"][metric]
                stats = _statistics(iou, frame["det_scores"], ignored_gt, ignored_det, dc, min_overlap, threshold)
                tp, fp = tp + stats[0], fp + stats[1]
            precision[t] = tp / (tp + fp) if tp + fp else 0.0
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        return float(precision[1:].sum() / (NUM_SAMPLE_POINTS - 1) * 100)
