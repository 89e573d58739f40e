"""Input checks shared by the scan primitives, run once at the public boundary before any kernel launch."""

import os

import torch


def check_scan_tensor(name: str, t: object) -> torch.Tensor:
    """``t`` must be a floating or complex tensor with at least a batch and a time dimension."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{name} must be floating point or complex, got dtype {t.dtype}")
    if t.dim() < 2:
        raise ValueError(f"{name} must be [B, T, ...] with time on dim 1, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)} (T = 0 or an empty dimension)")
    return t


def check_state(name: str, state: object, expected_shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A state tensor must have ``expected_shape`` and live on ``device``."""
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(state).__name__}")
    if not (state.is_floating_point() or state.is_complex()):
        raise TypeError(f"{name} must be floating point or complex, got dtype {state.dtype}")
    if state.shape != expected_shape:
        raise ValueError(f"{name} must have shape {tuple(expected_shape)}, got {tuple(state.shape)}")
    if state.device != device:
        raise ValueError(f"{name} is on {state.device} but the inputs are on {device}")
    return state


def check_triton_runnable(device: torch.device) -> None:
    """The Triton face runs on CUDA tensors, or on the CPU under ``TRITON_INTERPRET=1``."""
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"the triton backend needs CUDA tensors (got {device}); set TRITON_INTERPRET=1 before importing lrnn "
            "to run the kernels on the CPU, or LRNN_SCAN_BACKEND=torch"
        )
