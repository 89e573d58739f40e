"""Which face of a scan primitive runs: ``reference``, ``torch`` (chunked, CPU) or ``triton`` (CUDA).

By default CUDA tensors take the Triton kernels and everything else the chunked PyTorch path.
``LRNN_SCAN_BACKEND=reference|torch|triton`` forces one for every op (read at each call, so tests and
benchmarks can switch it).
"""

import os

import torch

BACKENDS = ("reference", "torch", "triton")


def scan_backend(device: torch.device) -> str:
    """The backend a scan on ``device`` runs with, honouring ``LRNN_SCAN_BACKEND``."""
    forced = os.environ.get("LRNN_SCAN_BACKEND", "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"LRNN_SCAN_BACKEND must be one of {BACKENDS}, got {forced!r}")
        return forced
    return "triton" if device.type == "cuda" else "torch"


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """State and accumulation dtype: float32 (complex64) for inputs of 32 bits or fewer, else float64."""
    if dtype.is_complex:
        return torch.complex128 if dtype == torch.complex128 else torch.complex64
    return torch.float64 if dtype == torch.float64 else torch.float32
