"""Scan primitives: linear recurrences computed in parallel over time.

Every op takes ``initial_state=``, ``output_final_state=`` and ``reverse=`` and returns ``(output, final_state)``.
"""

from .gla import chunk_gla, chunk_gla_step, fused_recurrent_gla
from .linear import linear_scan, linear_scan_step
from .newton import NewtonScanInfo, newton_scan, newton_scan_reference
from .selective import selective_scan, selective_scan_step

__all__ = [
    "NewtonScanInfo",
    "chunk_gla",
    "chunk_gla_step",
    "fused_recurrent_gla",
    "linear_scan",
    "linear_scan_step",
    "newton_scan",
    "newton_scan_reference",
    "selective_scan",
    "selective_scan_step",
]
