"""A pinhole camera between image pixels with depth and the LiDAR frame.

``projection P [3, 4]`` maps the rectified camera frame to pixels (KITTI's ``P2``) and ``lidar_to_camera
[4, 4]`` maps the LiDAR frame to the rectified camera frame (KITTI's ``R0_rect @ Tr_velo_to_cam``). A LiDAR point
``p`` (metres) lands at ``(u d, v d, d) = P T [p; 1]``: pixel ``(u, v)`` (column, row; pixel centres at integers)
and projective depth ``d`` (metres along the optical axis, plus ``P``'s small translation for a camera off the
reference). ``pixels_to_lidar`` inverts that exactly.
"""

from dataclasses import dataclass

import torch

from ..kitti import KittiCalibration


@dataclass
class PinholeCamera:
    """``projection [3, 4]`` and ``lidar_to_camera [4, 4]``, float64. Not frozen, so that Lightning moves a batch's
    cameras to the device with the rest of it."""

    projection: torch.Tensor
    lidar_to_camera: torch.Tensor

    def __post_init__(self) -> None:
        if self.projection.shape != (3, 4) or self.lidar_to_camera.shape != (4, 4):
            raise ValueError(
                f"a camera needs projection [3, 4] and lidar_to_camera [4, 4], got "
                f"{tuple(self.projection.shape)} and {tuple(self.lidar_to_camera.shape)}"
            )

    @classmethod
    def from_kitti(cls, calibration: KittiCalibration) -> "PinholeCamera":
        """KITTI's left colour camera: ``P2`` and ``R0_rect @ Tr_velo_to_cam``."""
        rectify = torch.eye(4, dtype=torch.float64)
        rectify[:3, :3] = calibration.R0_rect
        velo_to_cam = torch.eye(4, dtype=torch.float64)
        velo_to_cam[:3] = calibration.Tr_velo_to_cam
        return cls(calibration.P2.double(), rectify @ velo_to_cam)

    def full_projection(self) -> torch.Tensor:
        """``P T [3, 4]``: homogeneous LiDAR points to ``(u d, v d, d)``."""
        return self.projection.double() @ self.lidar_to_camera.double()

    def resized(self, scale: float) -> "PinholeCamera":
        """The camera of the image resized by ``scale`` (pixel centre ``u`` moves to ``scale (u + 1/2) - 1/2``)."""
        shift = 0.5 * scale - 0.5
        resize = torch.tensor([[scale, 0.0, shift], [0.0, scale, shift], [0.0, 0.0, 1.0]], dtype=torch.float64)
        return PinholeCamera(resize @ self.projection.double(), self.lidar_to_camera)

    def lidar_to_pixels(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LiDAR ``points [M, 3]`` (metres) to pixels ``[M, 2]`` (u, v) and depths ``[M]``, float64; a point behind
        the camera has depth <= 0 and meaningless pixels."""
        homogeneous = torch.cat([points.double(), points.new_ones(len(points), 1).double()], dim=1)
        projected = homogeneous @ self.full_projection().to(points.device).T
        depth = projected[:, 2]
        return projected[:, :2] / depth.unsqueeze(1).clamp(min=1e-6), depth

    def pixels_to_lidar(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Pixels ``[M, 2]`` (u, v) at depths ``[M]`` (metres) to LiDAR points ``[M, 3]``, float64."""
        full = self.full_projection().to(pixels.device)
        scaled = torch.cat([pixels.double() * depth.double().unsqueeze(1), depth.double().unsqueeze(1)], dim=1)
        square = torch.cat([full, full.new_tensor([[0.0, 0.0, 0.0, 1.0]])])  # [4, 4]: (u d, v d, d, 1) from [p; 1]
        rhs = torch.cat([scaled, scaled.new_ones(len(scaled), 1)], dim=1)
        return torch.linalg.solve(square, rhs.T).T[:, :3]
