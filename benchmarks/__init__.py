"""Benchmarks, one module per subject, each with ``main(argv=None)``; ``lrnn bench <name>`` runs one.

Numbers measured on GPUs go to ``benchmarks/results/`` as JSON.
"""
