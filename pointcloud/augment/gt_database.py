"""``GTDatabase``: the points of every labelled object of a training split, cut out by its box, for ground-truth
sampling (``gt_sampling.GTSampler``).

As OpenPCDet's ground-truth database: for each labelled box of each training scene, the points inside the box
(``detect.points_in_boxes``, faces included; a point inside two overlapping boxes goes to both), with x, y, z made
relative to the box centre, and the object's class name, box, number of points and difficulty. The objects' points
are concatenated into one tensor (object ``k`` is the slice ``offsets[k]:offsets[k + 1]``), so the database is a few
tensors that ``torch.save`` writes at once and DataLoader workers share.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..detect.boxes import check_boxes, points_in_boxes

UNKNOWN_DIFFICULTY = -1


@dataclass(frozen=True)
class GTDatabase:
    """``K`` objects cut out of labelled scenes.

    Attributes:
        points: ``[N, F]`` float, every object's points in turn: x, y, z relative to its box centre (metres), then
            the scene's other point features (intensity, ...).
        offsets: ``[K + 1]`` long; object ``k``'s points are ``points[offsets[k]:offsets[k + 1]]``.
        boxes: ``[K, 7]`` float, each object's box where it was, ``[x, y, z, dx, dy, dz, heading]`` (LiDAR frame).
        names: the ``K`` class names.
        difficulty: ``[K]`` long, KITTI's level (0 easy, 1 moderate, 2 hard), ``-1`` when unknown or none fits.
        scenes: ``[K]`` long, the index of the scene each object comes from.
    """

    points: torch.Tensor
    offsets: torch.Tensor
    boxes: torch.Tensor
    names: tuple[str, ...]
    difficulty: torch.Tensor
    scenes: torch.Tensor

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_point_features(self) -> int:
        """``F``, the columns of each point."""
        return self.points.shape[1]

    @property
    def num_points(self) -> torch.Tensor:
        """``[K]`` long, the number of points of each object."""
        return self.offsets.diff()

    def object_points(self, index: int) -> torch.Tensor:
        """Object ``index``'s points ``[N_k, F]`` (x, y, z relative to its box centre)."""
        return self.points[self.offsets[index] : self.offsets[index + 1]]

    def save(self, path: str | Path) -> None:
        """Write the database to ``path`` (``torch.save``; written beside it first, then moved into place)."""
        path = Path(path)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.partial")
        fields = {name: getattr(self, name) for name in ("points", "offsets", "boxes", "difficulty", "scenes")}
        torch.save({**fields, "names": list(self.names)}, temporary)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | Path) -> "GTDatabase":
        """A database written by ``save``."""
        fields = torch.load(path, weights_only=True)
        return cls(**{**fields, "names": tuple(fields["names"])})


def build_gt_database(
    scenes: Iterable[tuple[torch.Tensor, torch.Tensor, Sequence[str], torch.Tensor | None]],
    class_names: Sequence[str] | None = None,
) -> GTDatabase:
    """Cut every labelled object out of ``scenes``.

    Args:
        scenes: ``(points [P, F], boxes [M, 7], names (M class names), difficulty [M] long or None)`` per scene, in
            the LiDAR frame, unaugmented; ``F >= 3`` and the same for every scene. ``difficulty=None`` records -1.
        class_names: keep only objects of these classes (None keeps every class).

    Raises ``ValueError`` for no scene, a wrong shape, or names and difficulty that do not describe the boxes.
    """
    kept = None if class_names is None else set(class_names)
    points, boxes, names, difficulty, source = [], [], [], [], []
    num_features = None
    for index, (scene_points, scene_boxes, scene_names, scene_difficulty) in enumerate(scenes):
        if not isinstance(scene_points, torch.Tensor) or scene_points.ndim != 2 or scene_points.shape[1] < 3:
            shape = tuple(scene_points.shape) if isinstance(scene_points, torch.Tensor) else type(scene_points).__name__
            raise ValueError(f"scene {index}: points must be [P, F] with F >= 3, got {shape}")
        if num_features is not None and scene_points.shape[1] != num_features:
            raise ValueError(f"scene {index} has {scene_points.shape[1]} point features, earlier scenes {num_features}")
        num_features = scene_points.shape[1]
        check_boxes(scene_boxes, f"scene {index} boxes")
        if scene_boxes.ndim != 2:
            raise ValueError(f"scene {index}: boxes must be [M, 7], got {tuple(scene_boxes.shape)}")
        count = len(scene_boxes)
        if scene_difficulty is None:
            scene_difficulty = torch.full((count,), UNKNOWN_DIFFICULTY, dtype=torch.long)
        if len(scene_names) != count or tuple(scene_difficulty.shape) != (count,):
            raise ValueError(
                f"scene {index}: {len(scene_names)} names and difficulty {tuple(scene_difficulty.shape)} must describe "
                f"its {count} boxes"
            )
        chosen = [k for k, name in enumerate(scene_names) if kept is None or name in kept]
        if not chosen:
            continue
        inside = points_in_boxes(scene_points, scene_boxes[chosen])
        for column, k in enumerate(chosen):
            object_points = scene_points[inside[:, column]].clone()
            object_points[:, :3] -= scene_boxes[k, :3]
            points.append(object_points)
            boxes.append(scene_boxes[k])
            names.append(scene_names[k])
            difficulty.append(int(scene_difficulty[k]))
            source.append(index)
    if num_features is None:
        raise ValueError("build_gt_database needs at least one scene")
    counts = torch.tensor([len(p) for p in points], dtype=torch.long)
    return GTDatabase(
        points=torch.cat(points) if points else torch.zeros(0, num_features),
        offsets=torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
        boxes=torch.stack(boxes) if boxes else torch.zeros(0, 7),
        names=tuple(names),
        difficulty=torch.tensor(difficulty, dtype=torch.long),
        scenes=torch.tensor(source, dtype=torch.long),
    )
