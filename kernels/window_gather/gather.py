"""The public ``window_gather`` and ``window_scatter``: validate once, then dispatch to a face."""

import torch

from ..causal_conv1d.conv import kernel_backend
from .op import gather_rows
from .reference import gather_rows_reference

FEATURE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)


def _check_inputs(src: object, src_name: str, src_layout: str, index: object, index_name: str) -> None:
    if not isinstance(src, torch.Tensor):
        raise TypeError(f"{src_name} must be a torch.Tensor, got {type(src).__name__}")
    if src.dtype not in FEATURE_DTYPES:
        raise TypeError(f"{src_name} must be float16, bfloat16, float32 or float64, got dtype {src.dtype}")
    if src.dim() != 2:
        raise ValueError(f"{src_name} must be {src_layout}, got shape {tuple(src.shape)}")
    if not isinstance(index, torch.Tensor):
        raise TypeError(f"{index_name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype not in INDEX_DTYPES:
        raise TypeError(f"{index_name} must be int32 or int64, got dtype {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{index_name} must be one-dimensional, got shape {tuple(index.shape)}")
    if index.device != src.device:
        raise ValueError(f"{index_name} is on {index.device} but {src_name} is on {src.device}")
    if index.device.type == "cpu" and index.numel() > 0 and not torch.compiler.is_compiling():
        low, high = (int(v) for v in torch.aminmax(index))
        if low < 0 or high >= src.shape[0]:
            raise ValueError(
                f"{index_name} must index the {src.shape[0]} rows of {src_name} (0 to {src.shape[0] - 1}), "
                f"got values from {low} to {high}"
            )


def _gather_rows(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    if kernel_backend(src.device) == "torch":
        return gather_rows_reference(src, index)
    return gather_rows(src.contiguous(), index.contiguous())


def window_gather(features: torch.Tensor, voxel_at_slot: torch.Tensor) -> torch.Tensor:
    """Voxel features into group slots: ``grouped[s] = features[voxel_at_slot[s]]``.

    Args:
        features: ``[N, C]`` voxel features; float16, bfloat16, float32 or float64, any ``C``.
        voxel_at_slot: ``[S]`` int32 or int64, the voxel read into each slot, in ``[0, N)``; padding slots repeat
            voxels (``WindowGroups.voxel_at_slot``).

    Returns:
        ``grouped [S, C]`` in ``features``' dtype (``.view(G, group_size, C)`` gives the groups). The gradient of
        ``features`` sums over every slot holding the voxel, ``d_features[n] = sum_{s : voxel_at_slot[s] = n}
        d_grouped[s]``: a padding copy adds to its voxel's gradient, and a voxel in no slot gets zero.

    Backends: indexing in PyTorch by default on every device; the Triton kernels (forward and an atomic-free
    backward, ``kernels/window_gather/triton.py``) when ``LRNN_KERNEL_BACKEND=triton`` (on the CPU only under
    ``TRITON_INTERPRET=1``). Indices on the CPU are range-checked here; on CUDA a check would wait for the device,
    so out-of-range indices are not caught there.

    Example::

        grouped = window_gather(features, groups.voxel_at_slot).view(-1, groups.group_size, features.shape[1])
    """
    _check_inputs(features, "features", "[N, C]", voxel_at_slot, "voxel_at_slot")
    return _gather_rows(features, voxel_at_slot)


def window_scatter(grouped: torch.Tensor, slot_of_voxel: torch.Tensor) -> torch.Tensor:
    """Group slots back to voxel features: ``features[n] = grouped[slot_of_voxel[n]]``, padding copies dropped.

    Args:
        grouped: ``[S, C]`` slot features (``[G, group_size, C]`` flattened); float16, bfloat16, float32 or float64.
        slot_of_voxel: ``[N]`` int32 or int64, the one real slot of each voxel, in ``[0, S)``
            (``WindowGroups.slot_of_voxel``).

    Returns:
        ``features [N, C]`` in ``grouped``'s dtype. The gradient of ``grouped`` is the output's gradient at each
        voxel's real slot and zero at the padding slots (``d_grouped[s] = sum_{n : slot_of_voxel[n] = s}
        d_features[n]``, one term or none when each slot holds at most one voxel).

    Backends and checks as in ``window_gather``.
    """
    _check_inputs(grouped, "grouped", "[S, C]", slot_of_voxel, "slot_of_voxel")
    return _gather_rows(grouped, slot_of_voxel)
