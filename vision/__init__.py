"""Mamba-style image backbones registered with timm, and ConvS5 video models."""

from . import backbones  # registers the Vim and VMamba models with timm

__all__ = ["backbones"]
