import pytest
import torch
from lrnn.pointcloud.backbone import VoxelMerging, generate_voxels, merge_voxels
from lrnn.pointcloud.backbone.voxel_generation import select_top_voxels
from lrnn.pointcloud.sparse_conv import SparseConvTensor

SPATIAL_SHAPE = (2, 5, 6)  # (Z, Y, X)


def hand_made() -> SparseConvTensor:
    """Sample 0: 10 voxels (K = 2), sample 1: 5 voxels (K = 1); features [s, s] so each score is s."""
    voxels = [  # (b, z, y, x), score
        ((0, 0, 2, 3), 3.0),  # B: ties with C, loses on (z, y, x)
        ((0, 1, 4, 0), 5.0),  # A: the best, on the y = Y - 1 and x = 0 edges
        ((0, 0, 1, 1), 3.0),  # C
        *(((0, 1, 0, x), -1.0 - x) for x in range(6)),
        ((0, 0, 4, 5), 2.0),
        *(((1, 0, y, 2), -2.0 - y) for y in range(4)),
        ((1, 1, 0, 5), 1.0),  # D: the best of sample 1, below four voxels of sample 0, on y = 0 and x = X - 1
    ]
    coords = torch.tensor([row for row, _ in voxels], dtype=torch.int32)
    features = torch.tensor([[score, score] for _, score in voxels])
    return SparseConvTensor(features, coords, list(SPATIAL_SHAPE), 2)


def rows(tensor: torch.Tensor) -> list[tuple[int, ...]]:
    return sorted(tuple(row) for row in tensor.tolist())


def test_hand_made_example_gives_the_clamped_diagonal_neighbours_of_the_top_voxels_per_sample():
    x = hand_made()
    top = select_top_voxels(x.features.mean(1), x.indices, SPATIAL_SHAPE, 2, 0.2)
    assert top.tolist() == [1, 2, 14]  # A, C, D
    out = generate_voxels(x, 0.2)
    assert torch.equal(out.indices[:15], x.indices) and torch.equal(out.features[:15], x.features)
    a = [(0, 1, 3, 0), (0, 1, 3, 1), (0, 1, 4, 0), (0, 1, 4, 1)]  # x - 1 and y + 1 clamped
    c = [(0, 0, 0, 0), (0, 0, 0, 2), (0, 0, 2, 0), (0, 0, 2, 2)]
    d = [(1, 1, 0, 4), (1, 1, 0, 5), (1, 1, 1, 4), (1, 1, 1, 5)]  # y - 1 and x + 1 clamped
    assert rows(out.indices[15:]) == sorted(a + c + d)
    assert out.features[15:].eq(0).all() and out.features.shape == (27, 2)
    assert out.spatial_shape == x.spatial_shape and out.batch_size == 2


def test_small_samples_and_zero_scale_generate_nothing():
    x = hand_made()
    assert len(generate_voxels(x, 0.0).features) == 15
    assert select_top_voxels(x.features.mean(1), x.indices, SPATIAL_SHAPE, 2, 0.19).tolist() == [1]  # K = 1, 0
    with pytest.raises(ValueError, match="diff_scale"):
        generate_voxels(x, 1.5)


def test_random_voxels_match_a_per_sample_loop(random_voxels):
    shape = (3, 7, 8)
    coords, features = random_voxels([41, 4, 0, 23], shape, 3)
    x = SparseConvTensor(features, coords, list(shape), 4)
    out = generate_voxels(x, 0.2)
    scored = list(zip(features.mean(1).tolist(), coords.tolist(), strict=True))
    expected = []
    for b in range(4):
        sample = [(score, tuple(row)) for score, row in scored if row[0] == b]
        for _, (_, z, y, x_) in sorted(sample, reverse=True)[: int(0.2 * len(sample))]:
            for dy in (-1, 1):
                for dx in (-1, 1):
                    expected.append((b, z, min(max(y + dy, 0), shape[1] - 1), min(max(x_ + dx, 0), shape[2] - 1)))
    assert len(expected) == 4 * (8 + 0 + 0 + 4)
    assert rows(out.indices[len(coords) :]) == sorted(expected)


def test_merge_of_generated_voxels_is_the_merge_of_the_union(random_voxels):
    shape = (4, 6, 7)
    coords, features = random_voxels([60, 30], shape, 4)
    x = SparseConvTensor(features, coords, list(shape), 2)
    generated = generate_voxels(x, 0.2)
    merged, inverse = merge_voxels(generated, (1, 1, 2))
    union = {(b, z // 2, y, x_) for b, z, y, x_ in generated.indices.tolist()}
    assert rows(merged.indices) == sorted(union) and len(union) > len({(b, z // 2, y, x_) for b, z, y, x_ in coords})
    plain, plain_inverse = merge_voxels(x, (1, 1, 2))
    torch.testing.assert_close(merged.features[inverse[: len(coords)]], plain.features[plain_inverse])
    only_new = torch.ones(len(merged.features), dtype=torch.bool)
    only_new[inverse[: len(coords)]] = False
    assert only_new.any() and merged.features[only_new].eq(0).all()


def test_voxel_merging_with_diffusion_keeps_gradients_and_the_input_inverse(random_voxels):
    torch.manual_seed(0)
    shape = [2, 9, 10]
    coords, features = random_voxels([70, 40], tuple(shape), 4)
    features.requires_grad_()
    merging = VoxelMerging(4, (1, 1, 2), diffusion=True, diff_scale=0.3)
    merged, inverse = merging(SparseConvTensor(features, coords, shape, 2))
    plain, _ = VoxelMerging(4, (1, 1, 2))(SparseConvTensor(features, coords, shape, 2))
    assert len(inverse) == len(coords) and len(merged.indices) > len(plain.indices)
    assert merged.indices[inverse].tolist() == [[b, z // 2, y, x] for b, z, y, x in coords.tolist()]
    (merged.features * torch.randn_like(merged.features)).sum().backward()
    assert features.grad.abs().sum(1).gt(0).all()
    assert merging.descriptor.conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="diff_scale"):
        VoxelMerging(4, (1, 1, 2), diffusion=True, diff_scale=-0.1)
