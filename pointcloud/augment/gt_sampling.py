"""``GTSampler``: ground-truth sampling, OpenPCDet's ``gt_sampling`` augmentation, pasting objects of a
``GTDatabase`` into a training scene.
"""

from collections.abc import Mapping, Sequence

import torch

from ..detect.box_iou import bev_intersection_area
from ..detect.boxes import check_boxes, points_in_boxes
from .gt_database import GTDatabase


class GTSampler:
    """Paste objects cut out of other training scenes into a scene.

    For each class of ``sample_groups``, in order, ``sample_groups[name]`` distinct objects of that class are drawn
    uniformly (all of them when the database holds fewer) among the database's objects with at least
    ``min_points[name]`` points and a difficulty not in ``skip_difficulties``. A drawn object is kept when its box
    overlaps, in bird's-eye view (rotated, intersection area > 0), neither a box of the scene (of any class, and
    those kept for the classes before) nor another object of the same draw (both are dropped, as in OpenPCDet).
    Kept objects are pasted where they were in their own scene: the scene's points inside their boxes are removed,
    and their points, moved back from box-relative coordinates, are put in front of the scene's. So every point
    inside a pasted box is one of the pasted object's, and no two boxes overlap that did not before.

    The number drawn per class is fixed (OpenPCDet's ``LIMIT_WHOLE_SCENE: False``, as in LION's KITTI recipe),
    and objects are not moved onto a road plane (``USE_ROAD_PLANE``): they stay where they were recorded.

    Args:
        database: the objects to draw from (``build_gt_database`` over the training split).
        sample_groups: objects to draw per class name, e.g. LION's KITTI ``{"Car": 15, "Pedestrian": 10,
            "Cyclist": 10}``.
        min_points: per class name, the fewest points a drawn object may have (LION: 5 for each); absent classes
            take any count, even 0.
        skip_difficulties: difficulties never drawn (LION's KITTI: ``[-1]``, the objects of no KITTI difficulty).

    Raises ``ValueError`` for a negative count, a ``min_points`` class not in ``sample_groups``, or a class to be
    drawn that has no eligible object in the database (saying how many it has before the filters).
    """

    def __init__(
        self,
        database: GTDatabase,
        sample_groups: Mapping[str, int],
        min_points: Mapping[str, int] | None = None,
        skip_difficulties: Sequence[int] = (),
    ) -> None:
        min_points = dict(min_points or {})
        negative = {name: count for name, count in sample_groups.items() if int(count) < 0}
        if negative:
            raise ValueError(f"sample_groups counts must be >= 0, got {negative}")
        unknown = sorted(set(min_points) - set(sample_groups))
        if unknown:
            raise ValueError(f"min_points names classes {unknown} that sample_groups does not draw")
        self.database = database
        self.sample_groups = {name: int(count) for name, count in sample_groups.items() if int(count) > 0}
        names = list(database.names)
        skipped = torch.isin(database.difficulty, torch.tensor(list(skip_difficulties), dtype=torch.long))
        self.candidates: dict[str, torch.Tensor] = {}
        for name in self.sample_groups:
            of_class = torch.tensor([n == name for n in names], dtype=torch.bool)
            eligible = of_class & ~skipped & (database.num_points >= min_points.get(name, 0))
            if not eligible.any():
                raise ValueError(
                    f"the ground-truth database has no {name!r} object to sample: {int(of_class.sum())} of that class, "
                    f"none with >= {min_points.get(name, 0)} points and a difficulty not in {list(skip_difficulties)} "
                    f"(database classes: {sorted(set(names))})"
                )
            self.candidates[name] = eligible.nonzero().flatten()

    def __call__(
        self, points: torch.Tensor, boxes: torch.Tensor, names: Sequence[str], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Paste objects into the scene ``points [P, F]``, ``boxes [M, 7]``, ``names`` (M class names).

        Returns ``(points [P', F], boxes [M + S, 7], names)``: the pasted objects' points first, then the scene's
        points outside their boxes; the scene's boxes, then the ``S`` pasted ones.
        """
        if not isinstance(points, torch.Tensor) or points.ndim != 2:
            raise ValueError(f"points must be [P, F], got {getattr(points, 'shape', type(points).__name__)}")
        if points.shape[1] != self.database.num_point_features:
            raise ValueError(
                f"points have {points.shape[1]} features, the database's objects {self.database.num_point_features}"
            )
        check_boxes(boxes)
        if boxes.ndim != 2 or len(names) != len(boxes):
            raise ValueError(f"boxes must be [M, 7] with M names; got {tuple(boxes.shape)} and {len(names)} names")
        occupied, chosen = boxes, []
        for name, count in self.sample_groups.items():
            pool = self.candidates[name]
            drawn = pool[torch.randperm(len(pool), generator=generator)[:count]]
            candidates = self.database.boxes[drawn].to(boxes.dtype)
            overlaps_scene = (bev_intersection_area(candidates, occupied) > 0).any(dim=1)
            among = bev_intersection_area(candidates, candidates) > 0
            among.fill_diagonal_(False)
            kept = drawn[~overlaps_scene & ~among.any(dim=1)]
            chosen += kept.tolist()
            occupied = torch.cat([occupied, self.database.boxes[kept].to(boxes.dtype)])
        if not chosen:
            return points, boxes, list(names)
        pasted_boxes = self.database.boxes[chosen].to(boxes.dtype)
        pasted_points = []
        for index, box in zip(chosen, pasted_boxes, strict=True):
            object_points = self.database.object_points(index).to(points.dtype)
            object_points = torch.cat([object_points[:, :3] + box[:3].to(points.dtype), object_points[:, 3:]], dim=1)
            pasted_points.append(object_points)
        outside = ~points_in_boxes(points, pasted_boxes).any(dim=1)
        pasted_names = [self.database.names[index] for index in chosen]
        return torch.cat([*pasted_points, points[outside]]), torch.cat([boxes, pasted_boxes]), [*names, *pasted_names]
