"""``PointCloudDataModule``: LiDAR scenes with labelled boxes, synthetic or from a KITTI-format folder.

A sample is ``{"points": [P, 4] float32 (x, y, z metres, intensity), "boxes": [M, 7] float32 (x, y, z, dx, dy, dz,
heading, LiDAR frame), "labels": [M] long}``; the validation and test samples of KITTI frames also carry ``"kitti"``,
the frame's annotations as ``KittiAP`` takes them (``kitti_annotations``). ``collate_scenes`` keeps the per-sample
lists (clouds and box counts differ), so a batch is ``{"points": [...], "boxes": [...], "labels": [...]}`` (and
``"kitti": [...]``) of ``B`` entries each.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, get_worker_info

from ..datamodules import SplitsDataModule
from .augment import GTDatabase, GTSampler, RandomGlobalTransform, build_gt_database
from .detect import SYNTHETIC_CLASSES, synthetic_scene
from .detect.kitti_ap import MAX_OCCLUSION, MAX_TRUNCATION, MIN_HEIGHT
from .kitti import read_frame

KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist")


@dataclass(frozen=True)
class LabelledScene:
    """One scene as read, before augmentation and cropping.

    ``points [P, F]``; ``boxes [M, 7]`` of every labelled object, whatever its class (KITTI's ``Van``, ``Misc``,
    ... too: ground-truth sampling must not paste over them), their ``names`` and ``difficulty [M]`` long (KITTI's
    0 easy, 1 moderate, 2 hard; -1 for none or unknown); for KITTI frames, ``annotations``, ``KittiAP``'s target.
    """

    points: torch.Tensor
    boxes: torch.Tensor
    names: list[str]
    difficulty: torch.Tensor
    annotations: dict[str, Any] | None = None


def collate_scenes(samples: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch of scenes as lists, one entry per scene for every key of the samples: ``{"points": B x [P_b, 4],
    "boxes": B x [M_b, 7], "labels": B x [M_b]}`` and, when the samples have it, ``"kitti": B x dict``."""
    return {key: [sample[key] for sample in samples] for key in samples[0]}


def crop_to_range(
    points: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, point_cloud_range: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points inside ``[min, max)`` on x, y and z, and boxes whose BEV centre lies inside ``[min, max)`` on x, y."""
    low, high = points.new_tensor(point_cloud_range[:3]), points.new_tensor(point_cloud_range[3:])
    keep_points = ((points[:, :3] >= low) & (points[:, :3] < high)).all(dim=1)
    keep_boxes = ((boxes[:, :2] >= low[:2]) & (boxes[:, :2] < high[:2])).all(dim=1)
    return points[keep_points], boxes[keep_boxes], labels[keep_boxes]


def kitti_difficulty(heights: torch.Tensor, occlusion: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
    """KITTI's difficulty ``[M]`` long of objects with 2D box ``heights [M]`` (pixels), ``occlusion [M]`` (0..3) and
    ``truncation [M]`` (0..1): the easiest level whose limits the object meets (0 easy: taller than 40 px,
    occlusion 0, truncation <= 0.15; 1 moderate: 25 px, 1, 0.3; 2 hard: 25 px, 2, 0.5), -1 for none."""
    meets = torch.stack(
        [
            (heights > MIN_HEIGHT[level]) & (occlusion <= MAX_OCCLUSION[level]) & (truncation <= MAX_TRUNCATION[level])
            for level in range(len(MIN_HEIGHT))
        ],
        dim=1,
    )
    return torch.where(meets.any(dim=1), meets.long().argmax(dim=1), -1)


def kitti_annotations(label_path: str | Path) -> dict[str, Any]:
    """The fields of a ``label_2/*.txt`` file that ``kitti.read_boxes`` leaves out, for its objects and in its
    order (``DontCare`` lines dropped): ``names``, ``truncation [M]`` (0..1), ``occlusion [M]`` (0..3) and
    ``heights [M]`` (the 2D box's ``y2 - y1``, pixels), float64. Call after ``read_boxes``, which checks the lines."""
    rows = [line.split() for line in Path(label_path).read_text().splitlines()]
    rows = [fields for fields in rows if fields and fields[0] != "DontCare"]
    values = torch.tensor([[float(f[1]), float(f[2]), float(f[7]) - float(f[5])] for f in rows], dtype=torch.float64)
    truncation, occlusion, heights = values.reshape(-1, 3).unbind(1)
    return {"names": [f[0] for f in rows], "truncation": truncation, "occlusion": occlusion, "heights": heights}


def load_synthetic(
    first_seed: int,
    point_cloud_range: Sequence[float],
    num_objects: int,
    beams: int,
    azimuth_steps: int,
    index: int,
) -> LabelledScene:
    """Synthetic scene ``first_seed + index`` (difficulty unknown, -1)."""
    scene = synthetic_scene(first_seed + index, point_cloud_range, num_objects, beams, azimuth_steps)
    names = [SYNTHETIC_CLASSES[label] for label in scene.labels.tolist()]
    return LabelledScene(scene.points, scene.boxes, names, torch.full((len(names),), -1, dtype=torch.long))


def load_kitti(root: Path, frame_ids: Sequence[str], index: int) -> LabelledScene:
    """KITTI frame ``frame_ids[index]`` with every labelled object but ``DontCare``, and its ``KittiAP`` target
    ``{"boxes", "names", "heights", "occlusion", "truncation"}`` (all of them, uncropped). ``DontCare`` regions are
    left out of the target: their 3D boxes are dummies of size -1, which ``KittiAP`` lets claim nothing."""
    frame = read_frame(root, frame_ids[index])
    fields = kitti_annotations(root / "label_2" / f"{frame_ids[index]}.txt")
    difficulty = kitti_difficulty(fields["heights"], fields["occlusion"], fields["truncation"])
    target = {"boxes": frame.boxes, **fields}
    return LabelledScene(frame.points, frame.boxes, frame.names, difficulty, target)


class SceneDataset(Dataset):
    """Scenes from ``load(index)`` (a ``LabelledScene``), optionally augmented, keeping the objects of
    ``class_names`` (as labels, their indices), cropped to the range.

    Augmentation, in OpenPCDet's order: ``gt_sampler`` (before the other classes' boxes are dropped, so that
    nothing is pasted over them), then ``transform``. Both draw from one generator, seeded with ``seed`` in the main
    process and with ``seed + worker seed`` in a DataLoader worker (PyTorch gives every worker of every epoch its
    own seed, derived from the main process's random state, so ``seed_everything`` makes the whole run
    reproducible). With ``annotations``, samples carry the scene's ``annotations`` as ``"kitti"`` where it has them.
    """

    def __init__(
        self,
        load: Callable[[int], LabelledScene],
        length: int,
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        seed: int,
        gt_sampler: GTSampler | None = None,
        transform: RandomGlobalTransform | None = None,
        annotations: bool = False,
    ) -> None:
        self.load, self.length = load, length
        self.label_of = {name: k for k, name in enumerate(class_names)}
        self.point_cloud_range = tuple(point_cloud_range)
        self.seed, self.gt_sampler, self.transform, self.annotations = seed, gt_sampler, transform, annotations
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

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.load(index)
        points, boxes, names = scene.points, scene.boxes, scene.names
        if self.gt_sampler is not None:
            points, boxes, names = self.gt_sampler(points, boxes, names, self._random())
        keep = torch.tensor([name in self.label_of for name in names], dtype=torch.bool)
        boxes = boxes[keep]
        labels = torch.tensor([self.label_of[name] for name in names if name in self.label_of], dtype=torch.long)
        if self.transform is not None:
            points, boxes = self.transform(points, boxes, self._random())
        points, boxes, labels = crop_to_range(points, boxes, labels, self.point_cloud_range)
        sample: dict[str, Any] = {"points": points, "boxes": boxes, "labels": labels}
        if self.annotations and scene.annotations is not None:
            sample["kitti"] = scene.annotations
        return sample


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
    """Scenes for 3D detection with train-time augmentations, batches of ``collate_scenes``.

    ``source="synthetic"``: ``synthetic_scene`` with the seeds ``seed + i`` (train), ``seed + n_train + i`` (val),
    ``seed + n_train + n_val + i`` (test), classes ``SYNTHETIC_CLASSES``. ``source="kitti"``: the frames of the
    KITTI-format folder ``path`` (``velodyne/``, ``label_2/``, ``calib/``); objects whose type is not in
    ``class_names`` (``Van``, ``Misc``, ...) are dropped from the labels, and the validation and test samples carry
    the frames' ``KittiAP`` annotations as ``"kitti"`` (``load_kitti``). Every split is cropped to
    ``point_cloud_range`` (points, and boxes by their centre).

    Only the training split is augmented: ground-truth sampling when ``gt_sampling`` is given (``GTSampler``, from a
    ``GTDatabase`` of the training split's objects of ``class_names``, built in ``setup("fit")``), then the global
    flip, rotation and scaling (``RandomGlobalTransform``); all draws come from generators seeded by ``seed`` (see
    ``SceneDataset``).

    Args:
        source: ``"synthetic"`` or ``"kitti"``.
        path: the KITTI split folder (e.g. ``.../kitti/training``); only for ``"kitti"``.
        train_frames, val_frames, test_frames: KITTI frame ids (a list, a text file of ids, or None for every
            frame in ``velodyne/``).
        class_names: the label order; for ``"synthetic"`` it must be ``SYNTHETIC_CLASSES``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``, metres.
        n_train, n_val, n_test: synthetic scenes per split.
        num_objects, beams, azimuth_steps: the synthetic scenes' objects and sensor (see ``synthetic_scene``).
        flip_probability, rotation, scaling: global augmentation (LION's KITTI: 0.5, pi / 4 radians, (0.95, 1.05)).
        gt_sampling: objects pasted per scene and class, e.g. LION's KITTI ``{Car: 15, Pedestrian: 10, Cyclist:
            10}``; None (the default) turns ground-truth sampling off.
        gt_min_points: per class of ``gt_sampling``, the fewest points of a pasted object (LION's KITTI: 5 each).
        gt_skip_difficulties: difficulties never pasted (LION's KITTI: ``[-1]``, KITTI objects of no difficulty;
            synthetic objects all have -1).
        gt_database: a file for the ground-truth database: loaded when it exists, else built from the training
            split and written there (delete it after changing the training frames); None builds it in memory.
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
        gt_sampling: dict[str, int] | None = None,
        gt_min_points: dict[str, int] | None = None,
        gt_skip_difficulties: Sequence[int] = (),
        gt_database: str | None = None,
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
        unknown = sorted(set(gt_sampling or {}) - set(class_names))
        if unknown:
            raise ValueError(f"gt_sampling names classes {unknown} that are not in class_names {list(class_names)}")
        if gt_min_points and gt_sampling is None:
            raise ValueError("gt_min_points is given but gt_sampling is None (ground-truth sampling is off)")
        self.transform = RandomGlobalTransform(flip_probability, rotation, scaling)
        self.save_hyperparameters()
        self.class_names = list(class_names)

    def _gt_sampler(self, load: Callable[[int], LabelledScene], length: int) -> GTSampler:
        """The training split's ``GTSampler``, over the database file ``gt_database`` or one built now."""
        hp = self.hparams
        path = None if hp.gt_database is None else Path(hp.gt_database)
        if path is not None and path.is_file():
            database = GTDatabase.load(path)
        else:
            scenes = (load(index) for index in range(length))
            database = build_gt_database(
                ((scene.points, scene.boxes, scene.names, scene.difficulty) for scene in scenes), self.class_names
            )
            if path is not None:
                database.save(path)
        return GTSampler(database, hp.gt_sampling, hp.gt_min_points, hp.gt_skip_difficulties)

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
            loaders = {split: (partial(load_kitti, root, ids[split]), len(ids[split])) for split in ids}
        sampler = self._gt_sampler(*loaders["train"]) if hp.gt_sampling is not None and stage == "fit" else None
        self.splits = {
            split: SceneDataset(
                load,
                length,
                self.class_names,
                hp.point_cloud_range,
                hp.seed,
                gt_sampler=sampler if split == "train" else None,
                transform=self.transform if split == "train" else None,
                annotations=split != "train",
            )
            for split, (load, length) in loaders.items()
        }
