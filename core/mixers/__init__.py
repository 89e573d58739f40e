"""Sequence mixers: one interface (``Mixer``), built by name from a registry.

``build_mixer("s5", d_model=64, state_size=32)`` returns a module with ``forward(x [B, L, C], state=None)
-> (y, state)`` and ``step(x_t [B, C], state) -> (y_t, state)``.
"""

from .base import Mixer
from .registry import available_mixers, build_mixer, register_mixer
from .s5 import S5

__all__ = ["Mixer", "S5", "available_mixers", "build_mixer", "register_mixer"]
