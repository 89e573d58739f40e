"""K-means in torch, seeded: k-means++ seeding, then Lloyd iterations.

The objective is the mean squared Euclidean distance of each point to its nearest centroid.
"""

import torch


def nearest_centroid(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index ``[N]`` (int64) of the centroid ``[K, D]`` nearest to each point ``[N, D]`` (squared Euclidean)."""
    distances = points.pow(2).sum(1, keepdim=True) - 2 * points @ centroids.T + centroids.pow(2).sum(1).unsqueeze(0)
    return distances.argmin(dim=1)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` initial centroids ``[k, D]`` drawn from ``points [N, D]``: the first uniformly, each next one with
    probability proportional to its squared distance to the nearest centroid chosen so far."""
    first = torch.randint(points.shape[0], (1,), generator=generator)
    centroids = [points[first]]
    closest = (points - centroids[0]).pow(2).sum(1)
    for _ in range(1, k):
        weights = closest if float(closest.sum()) > 0 else torch.ones_like(closest)
        chosen = torch.multinomial(weights, 1, generator=generator)
        centroids.append(points[chosen])
        closest = torch.minimum(closest, (points - points[chosen]).pow(2).sum(1))
    return torch.cat(centroids)


def fit_kmeans(points: torch.Tensor, k: int, n_iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Centroids ``[k, D]`` of ``points [N, D]`` (float, N >= k): k-means++, then ``n_iters`` Lloyd steps.

    A centroid left without points keeps its position. Deterministic for a given ``seed``."""
    if points.ndim != 2 or points.shape[0] < k or k < 1:
        raise ValueError(f"need points [N, D] with N >= k >= 1, got shape {tuple(points.shape)} and k={k}")
    generator = torch.Generator().manual_seed(seed)
    points = points.float().cpu()
    centroids = kmeans_plus_plus(points, k, generator)
    for _ in range(n_iters):
        assignment = nearest_centroid(points, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=k).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
    return centroids
