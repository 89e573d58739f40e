"""Short causal depthwise conv1d over time with an optional fused SiLU (the conv in a Mamba block)."""

from .conv import causal_conv1d, causal_conv1d_step
from .reference import causal_conv1d_reference

__all__ = ["causal_conv1d", "causal_conv1d_reference", "causal_conv1d_step"]
