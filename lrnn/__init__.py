"""lrnn: fast, exact linear-recurrence scans in Triton, and the domain models built on them.

The code folders at the repository root install as sub-packages of this one name:
``lrnn.core`` (scan primitives, sequence mixers), ``lrnn.kernels`` (other fused Triton kernels),
``lrnn.vision``, ``lrnn.pointcloud``, ``lrnn.audio``, ``lrnn.timeseries`` (domain heads),
``lrnn.configs`` (LightningCLI recipes) and ``lrnn.benchmarks``.
"""

__version__ = "0.1.0"
