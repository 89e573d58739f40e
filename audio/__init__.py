"""Lina-Speech: gated-linear-attention text-to-speech with initial-state voice cloning."""
