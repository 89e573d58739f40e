"""Mamba-style image backbones registered with timm, and ConvS5 video models."""
