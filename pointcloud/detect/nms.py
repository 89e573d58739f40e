"""Greedy rotated bird's-eye-view non-maximum suppression (OpenPCDet's ``nms_gpu`` / ``class_agnostic_nms``)."""

import torch

from .box_iou import bev_iou
from .boxes import check_boxes


def rotated_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    pre_max_size: int | None = None,
    post_max_size: int | None = None,
) -> torch.Tensor:
    """Indices of the boxes kept by greedy NMS, highest score first.

    Boxes are visited by decreasing score; each one is kept unless its BEV IoU with an already kept box exceeds
    ``iou_threshold``.

    Args:
        boxes: ``[N, 7]`` ``(x, y, z, dx, dy, dz, heading)``, metres and radians.
        scores: ``[N]``.
        iou_threshold: suppress a box whose BEV IoU with a kept one is above this.
        pre_max_size: consider only this many top-scoring boxes (all when ``None``).
        post_max_size: keep at most this many (all when ``None``).

    Returns:
        ``[K]`` long indices into ``boxes``.
    """
    check_boxes(boxes)
    if boxes.ndim != 2 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"boxes must be [N, 7] and scores [N], got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    order = torch.argsort(scores, descending=True, stable=True)[:pre_max_size]
    overlaps = (bev_iou(boxes[order], boxes[order]) > iou_threshold).cpu()
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        kept.append(rank)
        if len(kept) == post_max_size:
            break
        suppressed |= overlaps[rank]
    return order[torch.tensor(kept, dtype=torch.long, device=order.device)]
