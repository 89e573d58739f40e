"""Scan primitives (``lrnn.core.scan``) and the sequence mixers built on them. No Lightning here."""
