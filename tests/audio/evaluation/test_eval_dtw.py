"""``dtw_path``: the path of least summed cost, checked against the textbook double loop."""

import pytest
import torch
from lrnn.audio.evaluation.dtw import dtw_path


def loop_dtw_cost(cost: torch.Tensor) -> float:
    rows, cols = cost.shape
    total = [[float("inf")] * (cols + 1) for _ in range(rows + 1)]
    total[0][0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            total[i][j] = float(cost[i - 1, j - 1]) + min(total[i - 1][j - 1], total[i - 1][j], total[i][j - 1])
    return total[rows][cols]


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (7, 1), (9, 13), (20, 11)])
def test_path_is_monotone_and_costs_the_least(shape):
    cost = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
    rows, cols = dtw_path(cost)
    assert (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, shape[0] - 1, shape[1] - 1)
    steps = torch.stack([rows.diff(), cols.diff()], dim=1).tolist()
    assert all(step in ([1, 0], [0, 1], [1, 1]) for step in steps)
    assert cost[rows, cols].sum().item() == pytest.approx(loop_dtw_cost(cost), rel=1e-12)


def test_a_stretched_copy_aligns_at_no_cost():
    sequence = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    stretched = sequence.repeat_interleave(2, dim=0)
    rows, cols = dtw_path(torch.cdist(sequence, stretched))
    assert torch.equal(rows, cols // 2)


def test_an_empty_cost_is_refused():
    with pytest.raises(ValueError, match=r"N, M >= 1, got shape \(0, 3\)"):
        dtw_path(torch.zeros(0, 3))
