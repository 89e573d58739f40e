"""The float64 oracles stay usable at GPU-test lengths: their backward must be linear in T.

Indexing ``x[:, t]`` at every step gives one ``SelectBackward`` node per step, each of which builds a gradient the
size of the whole input, so the backward costs O(T^2) (minutes at T = 16,411). Taking the steps from one
``unbind(1)`` gives a single node. These tests count the per-step nodes in each reference's autograd graph.
"""

import torch
from lrnn.core.scan.gla import chunk_gla_reference
from lrnn.core.scan.linear.reference import linear_scan_reference
from lrnn.core.scan.selective import selective_scan_reference

STEPS = 40


def per_step_index_nodes(output: torch.Tensor) -> int:
    """How many ``SelectBackward`` nodes the autograd graph of ``output`` holds."""
    seen, stack, count = set(), [output.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += type(node).__name__.startswith("SelectBackward")
        stack.extend(next_node for next_node, _ in node.next_functions)
    return count


def leaves(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.rand(shape, dtype=torch.float64, requires_grad=True) for shape in shapes]


def test_linear_scan_reference_reads_each_step_through_one_unbind():
    a, x = leaves((2, STEPS, 3), (2, STEPS, 3))
    h, _ = linear_scan_reference(a, x)
    assert per_step_index_nodes(h) == 0


def test_selective_scan_reference_reads_each_step_through_one_unbind():
    u, dt, z = leaves((2, STEPS, 4), (2, STEPS, 4), (2, STEPS, 4))
    B, C = leaves((2, STEPS, 1, 3), (2, STEPS, 1, 3))
    y, _ = selective_scan_reference(u, dt, -torch.rand(4, 3, dtype=torch.float64), B, C, z=z)
    assert per_step_index_nodes(y) == 0


def test_chunk_gla_reference_reads_each_step_through_one_unbind():
    q, k, v, g = leaves((1, STEPS, 2, 3), (1, STEPS, 2, 3), (1, STEPS, 2, 4), (1, STEPS, 2, 3))
    o, _ = chunk_gla_reference(q, k, v, -g)
    assert per_step_index_nodes(o) == 0
