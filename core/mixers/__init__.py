"""Sequence mixers: one interface (``Mixer``), built by name from a registry.

``build_mixer("mamba", d_model=64, bidirectional=True)`` (or ``s5``, ``gla``, ``retnet``, ``mamba2``, ``rwkv6``,
``mlstm``) returns a module with ``forward(x [B, L, C], state=None) -> (y, state)`` and
``step(x_t [B, C], state) -> (y_t, state)``.
"""

from .base import Mixer
from .gla import GLA
from .mamba import Mamba
from .mamba2 import Mamba2
from .mlstm import MLSTM
from .registry import available_mixers, build_mixer, register_mixer
from .retnet import RetNet
from .rwkv6 import RWKV6
from .s5 import S5

__all__ = [
    "GLA",
    "MLSTM",
    "Mamba",
    "Mamba2",
    "Mixer",
    "RWKV6",
    "RetNet",
    "S5",
    "available_mixers",
    "build_mixer",
    "register_mixer",
]
