"""``newton_scan``: ``z_t = f(z_{t-1}, x_t)`` for any ``f``, solved in parallel over time by Newton steps."""

from .affine import affine_scan
from .newton import NewtonScanInfo, newton_scan
from .reference import newton_scan_reference

__all__ = ["NewtonScanInfo", "affine_scan", "newton_scan", "newton_scan_reference"]
