"""Fused Triton kernels the domain heads need beyond the scan primitives (short convolutions, gathers, norms)."""
