"""``linear_scan``: ``h_t = a_t * h_{t-1} + x_t``, elementwise over ``[B, T, D]``."""

from .reference import linear_scan_reference
from .scan import linear_scan, linear_scan_step

__all__ = ["linear_scan", "linear_scan_step", "linear_scan_reference"]
