"""``selective_scan``: Mamba-1's input-dependent diagonal SSM scan, ``[B, T, D]`` channels with ``N`` states each."""

from .reference import selective_scan_reference
from .scan import selective_scan, selective_scan_step

__all__ = ["selective_scan", "selective_scan_step", "selective_scan_reference"]
