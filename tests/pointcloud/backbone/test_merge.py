import pytest
import torch
from lrnn.pointcloud.backbone import SpatialFeatureDescriptor, VoxelMerging, expand_voxels, merge_voxels
from lrnn.pointcloud.sparse_conv import SparseConvTensor

SPATIAL_SHAPE = (5, 9, 10)  # (Z, Y, X), odd sizes on purpose


@pytest.fixture
def sparse(random_voxels):
    """``sparse(counts)``: a SparseConvTensor of random voxels with 4 channels on ``SPATIAL_SHAPE``."""

    def make(counts: list[int]) -> SparseConvTensor:
        coords, features = random_voxels(counts, SPATIAL_SHAPE, 4)
        return SparseConvTensor(features, coords, list(SPATIAL_SHAPE), len(counts))

    return make


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_merge_matches_a_per_cell_loop(sparse, reduce):
    x = sparse([120, 70])
    merged, inverse = merge_voxels(x, (2, 3, 2), reduce)
    assert merged.spatial_shape == [3, 3, 5] and merged.batch_size == 2
    cells = {}
    for (b, z, y, x_), feature in zip(x.indices.tolist(), x.features, strict=True):
        cells.setdefault((b, z // 2, y // 3, x_ // 2), []).append(feature)
    assert sorted(cells) == [tuple(row) for row in merged.indices.tolist()]  # sorted (b, z, y, x), unique
    for row, feature in zip(merged.indices.tolist(), merged.features, strict=True):
        stacked = torch.stack(cells[tuple(row)])
        torch.testing.assert_close(feature, stacked.sum(0) if reduce == "sum" else stacked.mean(0))
    for fine, coarse in zip(x.indices.tolist(), merged.indices[inverse].tolist(), strict=True):
        assert coarse == [fine[0], fine[1] // 2, fine[2] // 3, fine[3] // 2]


def test_merge_then_expand_restores_voxels_alone_in_their_cell(sparse):
    x = sparse([150, 90])
    merged, inverse = merge_voxels(x, (2, 2, 2), "mean")
    restored = expand_voxels(merged, x.replace_feature(torch.zeros_like(x.features)), inverse)
    alone = torch.bincount(inverse)[inverse] == 1
    assert 0 < alone.sum() < len(alone)
    torch.testing.assert_close(restored.features[alone], x.features[alone])
    torch.testing.assert_close(restored.features, merged.features[inverse])  # shared cells get their mean
    assert torch.equal(restored.indices, x.indices)


def test_descriptor_keeps_the_voxels_and_mixes_only_neighbours(sparse):
    torch.manual_seed(0)
    x = sparse([60, 40])
    descriptor = SpatialFeatureDescriptor(4)
    out = descriptor(x)
    assert torch.equal(out.indices, x.indices) and out.features.shape == x.features.shape
    features = x.features.clone().requires_grad_()
    descriptor(x.replace_feature(features)).features[0].sum().backward()
    reached = features.grad.abs().sum(1) > 0
    distance = (x.indices[:, 1:] - x.indices[0, 1:]).abs().amax(1)
    assert reached[0] and not reached[(distance > 1) | (x.indices[:, 0] != x.indices[0, 0])].any()


def test_voxel_merging_normalises_the_merged_features(sparse):
    merging = VoxelMerging(4, (1, 1, 2))
    merged, inverse = merging(sparse([100, 50]))
    assert merged.spatial_shape == [3, 9, 10] and len(inverse) == 150
    torch.testing.assert_close(merged.features.mean(1), torch.zeros(len(merged.features)), atol=1e-5, rtol=0)


def test_merge_rejects_bad_scales(sparse):
    with pytest.raises(ValueError, match="down_scale"):
        merge_voxels(sparse([10]), (2, 2))
    with pytest.raises(ValueError, match="reduce"):
        merge_voxels(sparse([10]), (2, 2, 2), "max")
