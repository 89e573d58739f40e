"""UniLION's temporal tokens: the previous frame's tokens, moved into the current frame and appended to its tokens.

For each batch slot the module remembers the last frame's input tokens (features, detached, and the voxel
centres in the global frame through that frame's ``lidar_to_global [4, 4]`` pose). At the next frame of the same
scene the centres are moved into the current LiDAR frame (``lidar_to_global^-1``), re-voxelised on the current
grid, those outside the grid dropped, and their features passed through ``Linear(C, C)`` (UniLION's
``temporal_fuser``) and concatenated with the current tokens. The memory of a slot is reset when its scene id
changes or more than ``max_gap`` seconds have passed (UniLION: 2 s). Tokens from both frames that share a voxel
stay separate rows; ``merge_voxels(..., (1, 1, 1))`` folds them before the LION backbone, as UniLION's input merge.

We store the backbone's input tokens (LiDAR and camera), our reading of UniLION's "token set of the previous frame".
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..voxelize import voxel_cells


@dataclass(frozen=True)
class _Memory:
    centres: torch.Tensor  # [M, 3] float64, global frame
    features: torch.Tensor  # [M, C], detached
    scene: str
    time: float


def voxel_centres(
    coords: torch.Tensor, point_cloud_range: Sequence[float], voxel_size: Sequence[float]
) -> torch.Tensor:
    """Centres ``[M, 3]`` (x, y, z metres, float64) of voxels ``coords [M, 4]`` (batch, z, y, x)."""
    cells = coords[:, [3, 2, 1]].double()
    low = cells.new_tensor(point_cloud_range[:3])
    return low + (cells + 0.5) * cells.new_tensor(voxel_size)


def transform_points(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """``points [M, 3]`` through the homogeneous ``transform [4, 4]``, float64."""
    transform = transform.double().to(points.device)
    return points.double() @ transform[:3, :3].T + transform[:3, 3]


class TemporalTokens(nn.Module):
    """Append the previous frame's tokens, moved into the current frame, to the current ones.

    Args:
        channels: token channels ``C``.
        point_cloud_range, voxel_size: the token grid (metres).
        max_gap: seconds after which a slot's memory is stale.
    """

    def __init__(
        self, channels: int, point_cloud_range: Sequence[float], voxel_size: Sequence[float], max_gap: float = 2.0
    ) -> None:
        super().__init__()
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        self.fuse = nn.Linear(channels, channels)
        self.max_gap = float(max_gap)
        self._memory: dict[int, _Memory] = {}

    def reset(self) -> None:
        """Forget every slot's previous frame."""
        self._memory.clear()

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        lidar_to_global: torch.Tensor,
        scenes: Sequence[str],
        times: Sequence[float],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Current tokens ``features [N, C]``, ``coords [N, 4]`` of ``B`` frames with poses ``lidar_to_global
        [B, 4, 4]``, scene ids and times (seconds) -> the tokens with the warped previous ones appended
        (``[N + N', C]``, ``[N + N', 4]``); then remembers the current ones."""
        batch = len(scenes)
        if lidar_to_global.shape != (batch, 4, 4) or len(times) != batch:
            raise ValueError(
                f"need a [4, 4] pose and a time per frame: {batch} scene ids, poses {tuple(lidar_to_global.shape)}, "
                f"{len(times)} times"
            )
        extra_features, extra_coords = [features], [coords]
        for slot in range(batch):
            memory = self._memory.get(slot)
            if memory is None or memory.scene != scenes[slot] or abs(float(times[slot]) - memory.time) > self.max_gap:
                continue
            local = transform_points(memory.centres, torch.linalg.inv(lidar_to_global[slot].double()))
            cells, inside = voxel_cells(local, self.point_cloud_range, self.voxel_size)
            slot_column = cells.new_full((int(inside.sum()), 1), slot)
            extra_coords.append(torch.cat([slot_column, cells[inside].flip(1)], dim=1).to(coords.dtype))
            extra_features.append(self.fuse(memory.features[inside].to(features.device)))
        centres = voxel_centres(coords, self.point_cloud_range, self.voxel_size)
        for slot in range(batch):
            mine = coords[:, 0] == slot
            self._memory[slot] = _Memory(
                transform_points(centres[mine], lidar_to_global[slot]), features[mine].detach(), scenes[slot],
                float(times[slot]),
            )  # fmt: skip
        return torch.cat(extra_features), torch.cat(extra_coords)
