"""LayerNorm over the last dimension, many rows a Triton program (the norms of VMamba's maps and LION's voxels)."""

from .norm import LayerNorm, layer_norm

__all__ = ["LayerNorm", "layer_norm"]
