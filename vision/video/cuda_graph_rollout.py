"""Frame-by-frame generation replayed from one CUDA graph.

A generated frame at the paper's sizes (batch 2, 16x16 latent maps, 8 layers) is a few hundred small kernels, so
eager generation waits on the host's launches (ConvS5 7.0 ms a frame on the H100 against far less GPU work;
``benchmarks/NOTES.md``). mamba-ssm decodes from a captured graph for the same reason. Here the step is captured
once, writing the next frame and the new states over its own inputs, and replayed for every further frame.
"""

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map

WARMUP_STEPS = 2  # eager steps on a side stream before the capture (lazy inits, cuDNN's algorithm choice)

Step = Callable[[torch.Tensor, list[Any]], tuple[torch.Tensor, list[Any]]]


def check_capturable(device: torch.device) -> None:
    """Raise a clear error where generation cannot be captured: off CUDA, or with gradients on."""
    if device.type != "cuda":
        raise ValueError(f"generating from a CUDA graph needs CUDA tensors, got them on {device}")
    if torch.is_grad_enabled():
        raise ValueError("generating from a CUDA graph records no gradients: call it under torch.no_grad()")


def generate_with_cuda_graph(step: Step, frame: torch.Tensor, states: list[Any], n_frames: int) -> torch.Tensor:
    """``frame [B, C, S, S]`` and then ``n_frames - 1`` frames, each ``step(previous, states)``:
    ``[B, n_frames, C, S, S]``.

    ``step(frame, states) -> (next_frame, new_states)`` must be free of host synchronisation and of parameter
    changes, and run without gradients; ``states`` is any nesting of CUDA tensors (one entry per layer). The
    inputs are not modified. Under autocast the capture runs with the same dtype and the cast cache off, as
    CUDA graphs require.
    """
    check_capturable(frame.device)
    out = frame.new_empty((frame.shape[0], n_frames, *frame.shape[1:]))
    out[:, 0] = frame
    if n_frames == 1:
        return out
    current = frame.clone()
    carried = tree_map(torch.clone, states)
    autocast = torch.autocast(
        "cuda",
        dtype=torch.get_autocast_dtype("cuda"),
        enabled=torch.is_autocast_enabled("cuda"),
        cache_enabled=False,
    )
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), autocast:
        for _ in range(WARMUP_STEPS):
            step(current, carried)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), autocast:
        next_frame, new_states = step(current, carried)
        current.copy_(next_frame)
        for old, new in zip(tree_leaves(carried), tree_leaves(new_states), strict=True):
            old.copy_(new)
    for t in range(1, n_frames):
        graph.replay()
        out[:, t] = current
    return out
