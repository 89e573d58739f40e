"""LayerNorm and RMSNorm over the last dimension, many rows a Triton program (the norms of VMamba's maps, LION's
voxels and Vim's tokens)."""

from .norm import LayerNorm, layer_norm, rms_norm

__all__ = ["LayerNorm", "layer_norm", "rms_norm"]
