"""``chunk_gla``: gated linear attention, ``S_t = diag(exp g_t) S_{t-1} + k_t^T v_t``, ``o_t = scale q_t S_t``."""

from .fused_recurrent import fused_recurrent_gla
from .reference import chunk_gla_reference
from .scan import chunk_gla, chunk_gla_step

__all__ = ["chunk_gla", "chunk_gla_step", "chunk_gla_reference", "fused_recurrent_gla"]
