"""KITTI object-detection frames: LiDAR points, and labelled boxes moved into the LiDAR frame.

A KITTI-format split folder holds, per frame id ``NNNNNN``: ``velodyne/NNNNNN.bin`` (float32 ``x, y, z, intensity``,
metres, LiDAR frame), ``label_2/NNNNNN.txt`` (one object a line: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z
ry``, the box bottom centre ``(x, y, z)`` and yaw ``ry`` in the rectified camera frame) and ``calib/NNNNNN.txt``
(``P2 [3, 4]``, ``R0_rect [3, 3]``, ``Tr_velo_to_cam [3, 4]``).

Boxes follow OpenPCDet (``boxes3d_kitti_camera_to_lidar``): ``[x, y, z, dx, dy, dz, heading]`` in the LiDAR frame,
with the centre ``R^-1 (x, y, z)_rect`` lifted by ``h / 2`` (LiDAR z points up, so the centre sits mid-height),
``dx, dy, dz = l, w, h`` and ``heading = -(ry + pi / 2)``, where ``R = R0_rect Tr_velo_to_cam`` (homogeneous 4x4).
``DontCare`` objects are dropped.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CALIBRATION_SHAPES = {"P2": (3, 4), "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4)}


@dataclass(frozen=True)
class KittiCalibration:
    """One ``calib/*.txt`` file's matrices, float64: ``P2 [3, 4]``, ``R0_rect [3, 3]``, ``Tr_velo_to_cam [3, 4]``."""

    P2: torch.Tensor
    R0_rect: torch.Tensor
    Tr_velo_to_cam: torch.Tensor

    def rect_to_lidar(self, points_rect: torch.Tensor) -> torch.Tensor:
        """Points ``[M, 3]`` in the rectified camera frame to the LiDAR frame ``[M, 3]`` (metres, float64)."""
        velo_to_rect = torch.eye(4, dtype=torch.float64)
        velo_to_rect[:3, :3] = self.R0_rect
        velo_to_rect = velo_to_rect @ torch.cat([self.Tr_velo_to_cam, velo_to_rect.new_tensor([[0, 0, 0, 1]])])
        homogeneous = torch.cat([points_rect.double(), points_rect.new_ones(len(points_rect), 1).double()], dim=1)
        return torch.linalg.solve(velo_to_rect, homogeneous.T).T[:, :3]


@dataclass(frozen=True)
class KittiFrame:
    """One frame: ``points [P, 4]`` (x, y, z, intensity), ``boxes [M, 7]`` in the LiDAR frame, ``names`` (M class
    names, ``DontCare`` dropped) and the calibration."""

    points: torch.Tensor
    boxes: torch.Tensor
    names: list[str]
    calibration: KittiCalibration


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"KITTI file not found: {path}")
    return path


def read_points(path: str | Path) -> torch.Tensor:
    """A ``velodyne/*.bin`` file as ``[P, 4]`` float32 (x, y, z in metres, intensity)."""
    raw = np.fromfile(_existing(Path(path)), dtype=np.float32)
    if raw.size % 4:
        raise ValueError(f"{path} holds {raw.size} float32 values, not a multiple of 4 (x, y, z, intensity)")
    return torch.from_numpy(raw.reshape(-1, 4))


def read_calibration(path: str | Path) -> KittiCalibration:
    """A ``calib/*.txt`` file; ``ValueError`` naming the matrix if one is missing, has the wrong number of values
    (e.g. a homogeneous 4x4 ``R0_rect``) or holds something other than numbers."""
    values = {}
    for line in _existing(Path(path)).read_text().splitlines():
        key, _, numbers = line.partition(":")
        values[key.strip()] = numbers.split()
    matrices = {}
    for key, shape in CALIBRATION_SHAPES.items():
        if key not in values:
            raise ValueError(f"{path} has no {key} (expected {shape[0]}x{shape[1]} values)")
        if len(values[key]) != shape[0] * shape[1]:
            raise ValueError(
                f"{path}: {key} must hold {shape[0]}x{shape[1]} = {shape[0] * shape[1]} values, got {len(values[key])}"
            )
        try:
            numbers = [float(v) for v in values[key]]
        except ValueError as error:
            raise ValueError(f"{path}: {key} must hold numbers ({error})") from error
        matrices[key] = torch.tensor(numbers, dtype=torch.float64).view(shape)
    return KittiCalibration(**matrices)


def read_boxes(path: str | Path, calibration: KittiCalibration) -> tuple[torch.Tensor, list[str]]:
    """A ``label_2/*.txt`` file as LiDAR-frame ``boxes [M, 7]`` float32 and ``M`` class names (``DontCare`` dropped)."""
    names, camera_boxes = [], []
    for number, line in enumerate(_existing(Path(path)).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "DontCare":
            continue
        if len(fields) not in (15, 16):
            raise ValueError(f"{path}:{number}: a KITTI label has 15 fields (16 with a score), got {len(fields)}")
        names.append(fields[0])
        camera_boxes.append([float(v) for v in fields[8:15]])
    if not camera_boxes:
        return torch.zeros(0, 7), names
    height, width, length, x, y, z, yaw = torch.tensor(camera_boxes, dtype=torch.float64).unbind(1)
    centre = calibration.rect_to_lidar(torch.stack([x, y, z], dim=1))
    centre[:, 2] += height / 2
    heading = -(yaw + math.pi / 2)
    return torch.cat([centre, torch.stack([length, width, height, heading], dim=1)], dim=1).float(), names


def read_frame(split_root: str | Path, frame_id: str) -> KittiFrame:
    """Frame ``frame_id`` (e.g. ``"000000"``) of the split folder ``split_root`` (e.g. ``.../kitti/training``)."""
    root = Path(split_root)
    calibration = read_calibration(root / "calib" / f"{frame_id}.txt")
    boxes, names = read_boxes(root / "label_2" / f"{frame_id}.txt", calibration)
    return KittiFrame(read_points(root / "velodyne" / f"{frame_id}.bin"), boxes, names, calibration)
