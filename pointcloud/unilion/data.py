"""Synthetic two-frame clips with a camera, for training and testing ``UniLION`` without external data.

A clip is a synthetic scene (``synthetic_scene``) seen twice: the previous frame at the world origin and the
current one after the ego has driven ``ego_step`` metres along x (``lidar_to_global`` poses, 0.1 s apart). The
current frame's points and boxes are the world's moved back by that step and cropped to the range (the sensor's
view is not re-cast, so occlusion is that of the first position). Each frame has a camera image rendered from its
own points: a pinhole camera at the LiDAR origin looking along +x, each pixel showing its nearest point's inverse
depth, height and intensity (black where no point falls).

A sample is ``{"previous": frame, "current": frame}``, a frame ``{"points": [P, 4], "boxes": [M, 7], "labels":
[M], "image": [3, H, W], "camera": PinholeCamera, "pose": [4, 4] float64, "scene": str, "time": float}``;
``collate_clips`` keeps lists and stacks images and poses.
"""

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ...datamodules import SplitsDataModule
from ..data import crop_to_range
from ..detect import synthetic_scene
from .camera import PinholeCamera

FRAME_SECONDS = 0.1


def forward_camera(width: int, height: int, horizontal_fov_degrees: float = 90.0) -> PinholeCamera:
    """A pinhole camera at the LiDAR origin looking along +x (image right = -y, image down = -z)."""
    focal = (width / 2) / math.tan(math.radians(horizontal_fov_degrees) / 2)
    projection = torch.tensor(
        [[focal, 0.0, (width - 1) / 2, 0.0], [0.0, focal, (height - 1) / 2, 0.0], [0.0, 0.0, 1.0, 0.0]],
        dtype=torch.float64,
    )
    axes = torch.tensor([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    return PinholeCamera(projection, axes.double())


def render_points(points: torch.Tensor, camera: PinholeCamera, height: int, width: int) -> torch.Tensor:
    """An image ``[3, H, W]`` in [0, 1] of ``points [P, 4]`` (x, y, z, intensity): per pixel the nearest point's
    ``min(1, 5 / depth)``, ``(z + 3) / 4`` clamped, and intensity; zeros where no point projects."""
    pixels, depth = camera.lidar_to_pixels(points[:, :3])
    cols, rows = torch.round(pixels[:, 0]).long(), torch.round(pixels[:, 1]).long()
    seen = (depth > 0.1) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    index, depth, points = rows[seen] * width + cols[seen], depth[seen], points[seen]
    nearest = torch.full((height * width,), math.inf, dtype=depth.dtype).scatter_reduce(0, index, depth, "amin")
    front = depth == nearest[index]
    values = torch.stack(
        [(5.0 / depth).clamp(max=1.0), ((points[:, 2] + 3) / 4).clamp(0, 1), points[:, 3].clamp(0, 1)], dim=0
    ).float()
    image = torch.zeros(3, height * width)
    image[:, index[front]] = values[:, front]
    return image.reshape(3, height, width)


class SyntheticClips(Dataset):
    """``count`` clips; clip ``i`` is the same for the same arguments (scene seed ``seed + i``)."""

    def __init__(
        self,
        count: int,
        seed: int,
        point_cloud_range: Sequence[float],
        num_objects: int,
        beams: int,
        azimuth_steps: int,
        ego_step: float,
        image_size: Sequence[int],
    ) -> None:
        self.count, self.seed, self.range = count, seed, [float(v) for v in point_cloud_range]
        self.scene_options = {"num_objects": num_objects, "beams": beams, "azimuth_steps": azimuth_steps}
        self.ego_step, (self.height, self.width) = float(ego_step), image_size
        self.camera = forward_camera(self.width, self.height)

    def __len__(self) -> int:
        return self.count

    def _frame(self, scene: Any, offset: float, index: int, time: float) -> dict[str, Any]:
        shift = torch.tensor([offset, 0.0, 0.0])
        points, boxes = scene.points.clone(), scene.boxes.clone()
        points[:, :3] -= shift
        boxes[:, :3] -= shift
        points, boxes, labels = crop_to_range(points, boxes, scene.labels, self.range)
        pose = torch.eye(4, dtype=torch.float64)
        pose[0, 3] = offset
        image = render_points(points, self.camera, self.height, self.width)
        return {
            "points": points, "boxes": boxes, "labels": labels, "image": image, "camera": self.camera, "pose": pose,
            "scene": f"synthetic-{self.seed + index}", "time": time,
        }  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, dict[str, Any]]:
        scene = synthetic_scene(self.seed + index, self.range, **self.scene_options)
        return {
            "previous": self._frame(scene, 0.0, index, 0.0),
            "current": self._frame(scene, self.ego_step, index, 0.1),
        }


def collate_clips(samples: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per frame of the clip, lists of the samples' values, with ``image`` stacked ``[B, 3, H, W]`` and ``pose``
    ``[B, 4, 4]``."""
    batch = {}
    for frame in ("previous", "current"):
        rows = [sample[frame] for sample in samples]
        batch[frame] = {key: [row[key] for row in rows] for key in rows[0]}
        batch[frame]["image"] = torch.stack(batch[frame]["image"])
        batch[frame]["pose"] = torch.stack(batch[frame]["pose"])
    return batch


class SyntheticClipDataModule(SplitsDataModule):
    """Synthetic clips for ``UniLIONModule``: ``n_train``, ``n_val``, ``n_test`` clips from disjoint seeds.

    Args:
        point_cloud_range: metres, LiDAR frame.
        num_objects, beams, azimuth_steps: ``synthetic_scene``'s options.
        ego_step: metres the ego drives between the two frames.
        image_size: ``(H, W)`` of the rendered camera images.
    """

    collate_fn = staticmethod(collate_clips)

    def __init__(
        self,
        point_cloud_range: Sequence[float] = (0.0, -16.0, -3.0, 32.0, 16.0, 1.0),
        n_train: int = 64,
        n_val: int = 4,
        n_test: int = 4,
        num_objects: int = 6,
        beams: int = 32,
        azimuth_steps: int = 512,
        ego_step: float = 0.8,
        image_size: Sequence[int] = (64, 192),
        seed: int = 0,
        batch_size: int = 2,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if min(n_train, n_val, n_test) < 1:
            raise ValueError(f"every split needs a clip, got {n_train}, {n_val}, {n_test}")
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        options = (h.point_cloud_range, h.num_objects, h.beams, h.azimuth_steps, h.ego_step, h.image_size)
        starts = {"train": 0, "val": h.n_train, "test": h.n_train + h.n_val}
        counts = {"train": h.n_train, "val": h.n_val, "test": h.n_test}
        self.splits = {name: SyntheticClips(counts[name], h.seed + starts[name], *options) for name in starts}
