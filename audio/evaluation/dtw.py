"""Dynamic time warping: the monotone alignment of two sequences of least summed cost.

For a cost matrix ``C [N, M]``, the accumulated cost is

    D[i, j] = C[i, j] + min(D[i - 1, j - 1], D[i - 1, j], D[i, j - 1]),   D[0, 0] = C[0, 0],

and the path runs back from ``(N - 1, M - 1)`` to ``(0, 0)`` through the smallest predecessor (the diagonal on
ties). Cells on one anti-diagonal ``i + j = k`` depend only on the two before it, so each anti-diagonal is one
vectorised step: ``N + M - 1`` steps in all.
"""

import torch


def dtw_path(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cost [N, M]`` (finite, non-negative) -> the path's ``rows [P]`` and ``cols [P]`` (int64, from ``(0, 0)``
    to ``(N - 1, M - 1)``, each step advancing one or both by one)."""
    if cost.ndim != 2 or 0 in cost.shape:
        raise ValueError(f"cost must be [N, M] with N, M >= 1, got shape {tuple(cost.shape)}")
    rows, cols = cost.shape
    cost = cost.detach().double().cpu()
    total = torch.full((rows + 1, cols + 1), torch.inf, dtype=torch.float64)
    total[0, 0] = 0.0
    for k in range(rows + cols - 1):
        i = torch.arange(max(0, k - cols + 1), min(k, rows - 1) + 1)
        j = k - i
        best = torch.minimum(torch.minimum(total[i, j], total[i, j + 1]), total[i + 1, j])
        total[i + 1, j + 1] = cost[i, j] + best
    accumulated = total.numpy()
    path = []
    i, j = rows, cols
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda step: accumulated[step])
    path.reverse()
    return torch.tensor([p[0] for p in path]), torch.tensor([p[1] for p in path])
