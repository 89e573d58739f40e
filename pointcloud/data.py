"""``PointCloudDataModule``: LiDAR scenes with labelled boxes, synthetic or from a KITTI-format folder.

A sample is ``{"points": [P, 4] float32 (x, y, z metres, intensity), "boxes": [M, 7] float32 (x, y, z, dx, dy, dz,
heading, LiDAR frame), "labels": [M] long}``; ``collate_scenes`` keeps the per-sample lists (clouds and box counts
differ), so a batch is ``{"points": [...], "boxes": [...], "labels": [...]}`` of ``B`` tensors each.
"""

import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import Dataset, get_worker_info

from ..datamodules import SplitsDataModule
from .detect import SYNTHETIC_CLASSES, synthetic_scene
from .kitti import read_frame

KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist")


def collate_scenes(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    """A batch of scenes as lists: ``{"points": B x [P_b, 4], "boxes": B x [M_b, 7], "labels": B x [M_b]}``."""
    return {key: [sample[key] for sample in samples] for key in ("points", "boxes", "labels")}


def crop_to_range(
    points: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, point_cloud_range: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points inside ``[min, max)`` on x, y and z, and boxes whose BEV centre lies inside ``[min, max)`` on x, y."""
    low, high = points.new_tensor(point_cloud_range[:3]), points.new_tensor(point_cloud_range[3:])
    keep_points = ((points[:, :3] >= low) & (points[:, :3] < high)).all(dim=1)
    keep_boxes = ((boxes[:, :2] >= low[:2]) & (boxes[:, :2] < high[:2])).all(dim=1)
    return points[keep_points], boxes[keep_boxes], labels[keep_boxes]


def augment_scene(
    points: torch.Tensor,
    boxes: torch.Tensor,
    generator: torch.Generator,
    flip_probability: float,
    rotation: float,
    scaling: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenPCDet's global augmentations, in its order, on the whole scene (points and boxes alike).

    Flip about the x axis with ``flip_probability`` (``y -> -y``, ``heading -> -heading``); rotation about z by an
    angle uniform in ``[-rotation, rotation]`` radians (centres rotated, ``heading + angle``); scaling of every
    coordinate and box size by a factor uniform in ``scaling``.
    """
    points, boxes = points.clone(), boxes.clone()
    if torch.rand((), generator=generator) < flip_probability:
        points[:, 1] = -points[:, 1]
        boxes[:, 1], boxes[:, 6] = -boxes[:, 1], -boxes[:, 6]
    angle = (2 * torch.rand((), generator=generator).item() - 1) * rotation
    cos, sin = math.cos(angle), math.sin(angle)
    rotate = points.new_tensor([[cos, sin], [-sin, cos]])  # row vectors: [x, y] @ rotate turns them by +angle
    points[:, :2] = points[:, :2] @ rotate
    boxes[:, :2] = boxes[:, :2] @ rotate
    boxes[:, 6] = torch.remainder(boxes[:, 6] + angle + math.pi, 2 * math.pi) - math.pi
    factor = scaling[0] + (scaling[1] - scaling[0]) * torch.rand((), generator=generator).item()
    points[:, :3] *= factor
    boxes[:, :6] *= factor
    return points, boxes


def load_synthetic(
    first_seed: int,
    point_cloud_range: Sequence[float],
    num_objects: int,
    beams: int,
    azimuth_steps: int,
    index: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic scene ``first_seed + index`` as ``(points, boxes, labels)``."""
    scene = synthetic_scene(first_seed + index, point_cloud_range, num_objects, beams, azimuth_steps)
    return scene.points, scene.boxes, scene.labels


def load_kitti(
    root: Path, frame_ids: Sequence[str], label_of: dict[str, int], index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """KITTI frame ``frame_ids[index]`` as ``(points, boxes, labels)``, keeping the objects named in ``label_of``."""
    frame = read_frame(root, frame_ids[index])
    kept = [k for k, name in enumerate(frame.names) if name in label_of]
    labels = torch.tensor([label_of[frame.names[k]] for k in kept], dtype=torch.long)
    return frame.points, frame.boxes[kept], labels


class SceneDataset(Dataset):
    """Scenes from ``load(index)`` (``(points, boxes, labels)``), optionally augmented, cropped to the range.

    Augmentations draw from a generator seeded with ``seed`` in the main process; in a DataLoader worker with
    ``seed + worker seed`` (PyTorch gives every worker of every epoch its own, derived from the main process's
    random state, so ``seed_everything`` makes the whole run reproducible).
    """

    def __init__(
        self,
        load: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        length: int,
        point_cloud_range: Sequence[float],
        augment: bool,
        seed: int,
        flip_probability: float,
        rotation: float,
        scaling: tuple[float, float],
    ) -> None:
        self.load, self.length = load, length
        self.point_cloud_range = tuple(point_cloud_range)
        self.augment, self.seed = augment, seed
        self.flip_probability, self.rotation, self.scaling = flip_probability, rotation, tuple(scaling)
        self._generator: torch.Generator | None = None
        self._generator_owner: int | None = None

    def __len__(self) -> int:
        return self.length

    def _random(self) -> torch.Generator:
        worker = get_worker_info()
        owner = None if worker is None else worker.seed
        if self._generator is None or owner != self._generator_owner:
            seed = self.seed if worker is None else (self.seed + worker.seed) % 2**63
            self._generator, self._generator_owner = torch.Generator().manual_seed(seed), owner
        return self._generator

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        points, boxes, labels = self.load(index)
        if self.augment:
            points, boxes = augment_scene(
                points, boxes, self._random(), self.flip_probability, self.rotation, self.scaling
            )
        points, boxes, labels = crop_to_range(points, boxes, labels, self.point_cloud_range)
        return {"points": points, "boxes": boxes, "labels": labels}


def kitti_frame_ids(root: Path, frames: Sequence[str] | str | None) -> list[str]:
    """Frame ids: the list given, the ids in a text file (one a line, as KITTI's ``ImageSets/train.txt``), or, for
    None, every ``velodyne/*.bin`` under ``root``, sorted."""
    if frames is None:
        ids = sorted(path.stem for path in (root / "velodyne").glob("*.bin"))
    elif isinstance(frames, str):
        ids = Path(frames).read_text().split()
    else:
        ids = [str(frame) for frame in frames]
    if not ids:
        raise ValueError(f"no KITTI frames: frames={frames!r} under {root} (is velodyne/ there?)")
    return ids


class PointCloudDataModule(SplitsDataModule):
    """Scenes for 3D detection with train-time global augmentations, batches of ``collate_scenes``.

    ``source="synthetic"``: ``synthetic_scene`` with the seeds ``seed + i`` (train), ``seed + n_train + i`` (val),
    ``seed + n_train + n_val + i`` (test), classes ``SYNTHETIC_CLASSES``. ``source="kitti"``: the frames of the
    KITTI-format folder ``path`` (``velodyne/``, ``label_2/``, ``calib/``); objects whose type is not in
    ``class_names`` (``Van``, ``Misc``, ...) are dropped. Every split is cropped to ``point_cloud_range`` (points,
    and boxes by their centre); only the training split is augmented (``augment_scene``).

    Args:
        source: ``"synthetic"`` or ``"kitti"``.
        path: the KITTI split folder (e.g. ``.../kitti/training``); only for ``"kitti"``.
        train_frames, val_frames, test_frames: KITTI frame ids (a list, a text file of ids, or None for every
            frame in ``velodyne/``).
        class_names: the label order; for ``"synthetic"`` it must be ``SYNTHETIC_CLASSES``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``, metres.
        n_train, n_val, n_test: synthetic scenes per split.
        num_objects, beams, azimuth_steps: the synthetic scenes' objects and sensor (see ``synthetic_scene``).
        flip_probability, rotation, scaling: augmentation (OpenPCDet's KITTI: 0.5, pi / 4, (0.95, 1.05)).
        seed: seeds the synthetic scenes and the augmentations.
        batch_size, num_workers: as for every ``SplitsDataModule``.
    """

    collate_fn = staticmethod(collate_scenes)

    def __init__(
        self,
        source: str = "synthetic",
        path: str | None = None,
        train_frames: list[str] | str | None = None,
        val_frames: list[str] | str | None = None,
        test_frames: list[str] | str | None = None,
        class_names: Sequence[str] = KITTI_CLASSES,
        point_cloud_range: Sequence[float] = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0),
        n_train: int = 64,
        n_val: int = 8,
        n_test: int = 8,
        num_objects: int = 10,
        beams: int = 64,
        azimuth_steps: int = 2048,
        flip_probability: float = 0.5,
        rotation: float = math.pi / 4,
        scaling: tuple[float, float] = (0.95, 1.05),
        seed: int = 0,
        batch_size: int = 4,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if source not in ("synthetic", "kitti"):
            raise ValueError(f"source must be 'synthetic' or 'kitti', got {source!r}")
        if source == "kitti" and path is None:
            raise ValueError("source='kitti' needs path, the KITTI split folder (velodyne/, label_2/, calib/)")
        if source == "synthetic" and tuple(class_names) != SYNTHETIC_CLASSES:
            raise ValueError(f"synthetic scenes have the classes {list(SYNTHETIC_CLASSES)}, got {list(class_names)}")
        if len(point_cloud_range) != 6:
            raise ValueError(f"point_cloud_range must hold 6 numbers, got {list(point_cloud_range)}")
        if not 0 <= flip_probability <= 1 or rotation < 0 or not 0 < scaling[0] <= scaling[1]:
            raise ValueError(
                f"need flip_probability in [0, 1], rotation >= 0 and 0 < scaling[0] <= scaling[1]; got "
                f"{flip_probability}, {rotation}, {list(scaling)}"
            )
        self.save_hyperparameters()
        self.class_names = list(class_names)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if hp.source == "synthetic":
            first_seeds = {"train": hp.seed, "val": hp.seed + hp.n_train, "test": hp.seed + hp.n_train + hp.n_val}
            sizes = {"train": hp.n_train, "val": hp.n_val, "test": hp.n_test}
            scene_options = (hp.point_cloud_range, hp.num_objects, hp.beams, hp.azimuth_steps)
            loaders = {
                split: (partial(load_synthetic, first_seeds[split], *scene_options), sizes[split]) for split in sizes
            }
        else:
            root = Path(hp.path)
            frames = {"train": hp.train_frames, "val": hp.val_frames, "test": hp.test_frames}
            ids = {split: kitti_frame_ids(root, chosen) for split, chosen in frames.items()}
            label_of = {name: k for k, name in enumerate(self.class_names)}
            loaders = {split: (partial(load_kitti, root, ids[split], label_of), len(ids[split])) for split in ids}
        self.splits = {
            split: SceneDataset(
                load,
                length,
                hp.point_cloud_range,
                split == "train",
                hp.seed,
                hp.flip_probability,
                hp.rotation,
                hp.scaling,
            )
            for split, (load, length) in loaders.items()
        }
