import torch
from lrnn.audio.codec.kmeans import fit_kmeans, nearest_centroid


def test_recovers_well_separated_clusters_and_is_seeded():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = (centres.repeat_interleave(50, 0) + 0.1 * torch.randn(150, 2, generator=generator))[
        torch.randperm(150, generator=generator)
    ]
    centroids = fit_kmeans(points, 3, n_iters=10, seed=1)
    assert torch.allclose(centroids[nearest_centroid(centres, centroids)], centres, atol=0.1)
    assert torch.equal(centroids, fit_kmeans(points, 3, n_iters=10, seed=1))
