"""LION's gather of voxel features into padded equal-size groups and the scatter back, with their gradients."""

from .gather import window_gather, window_scatter
from .reference import gather_rows_reference

__all__ = ["gather_rows_reference", "window_gather", "window_scatter"]
