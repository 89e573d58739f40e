import math

import torch
from lrnn.pointcloud.backbone import LIONBlock, VoxelPositionEmbedding
from lrnn.pointcloud.sparse_conv import SparseConvTensor

SPATIAL_SHAPE = (4, 12, 16)  # (Z, Y, X)


def test_block_keeps_the_voxels_in_their_order(random_voxels):
    torch.manual_seed(0)
    coords, features = random_voxels([140, 60], SPATIAL_SHAPE, 8)
    x = SparseConvTensor(features, coords, list(SPATIAL_SHAPE), 2)
    block = LIONBlock(8, 2, [[2, 2, 2], [2, 2, 1]], (5, 5, 4), 24, "retnet", {"num_heads": 2})
    out = block(x)
    assert torch.equal(out.indices, x.indices) and out.features.shape == features.shape
    assert torch.isfinite(out.features).all() and not torch.allclose(out.features, features)


def test_position_embedding_sees_coordinates_scaled_to_plus_minus_pi():
    embedding = VoxelPositionEmbedding(4)
    seen = []
    embedding.mlp[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    coords = torch.tensor([[0, 0, 0, 0], [1, 4, 12, 16]], dtype=torch.int32)  # (batch, z, y, x)
    assert embedding(coords, SPATIAL_SHAPE).shape == (2, 4)
    torch.testing.assert_close(seen[0], torch.tensor([[-math.pi] * 3, [math.pi] * 3]))
