import pytest
import torch
import torch.nn.functional as F
from lrnn.pointcloud.sparse_conv import SparseConv3d, SparseConvTensor, SparseSequential, SubMConv3d, to_dense

SPATIAL_SHAPE = (5, 6, 7)  # (Z, Y, X)
BATCH_SIZE = 2


@pytest.fixture
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_sparse_input(channels: int, active: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique active sites ``indices [N, 4]`` (batch, z, y, x) and features ``[N, channels]``."""
    generator = torch.Generator().manual_seed(0)
    z, y, x = SPATIAL_SHAPE
    flat = torch.randperm(BATCH_SIZE * z * y * x, generator=generator)[:active].sort().values
    indices = torch.stack([flat // (z * y * x), flat // (y * x) % z, flat // x % y, flat % x], dim=1).int()
    return indices, torch.randn(active, channels, generator=generator)


def dense_weight(conv) -> torch.Tensor:
    """spconv's ``[C_out, kz, ky, kx, C_in]`` as conv3d's ``[C_out, C_in, kz, ky, kx]``."""
    return conv.weight.permute(0, 4, 1, 2, 3)


@pytest.mark.parametrize("submanifold", [True, False])
def test_forward_and_backward_match_dense_conv3d(single_thread, submanifold):
    in_channels, out_channels = 2, 3
    indices, features = random_sparse_input(in_channels)
    if submanifold:
        conv = SubMConv3d(in_channels, out_channels, 3, padding=1, bias=True)
    else:
        conv = SparseConv3d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
    torch.nn.init.normal_(conv.weight)
    features_sparse = features.clone().requires_grad_()
    out = SparseSequential(conv)(SparseConvTensor(features_sparse, indices, list(SPATIAL_SHAPE), BATCH_SIZE))

    features_dense = features.clone().requires_grad_()
    grid = torch.zeros(BATCH_SIZE, *SPATIAL_SHAPE, in_channels)
    grid = grid.index_put((*indices.long().unbind(1),), features_dense).permute(0, 4, 1, 2, 3)
    bias = conv.bias if submanifold else None
    want = F.conv3d(grid, dense_weight(conv), bias, stride=conv.stride, padding=conv.padding)

    got = to_dense(out)
    if submanifold:  # outputs only at the input's active sites
        assert torch.equal(out.indices, indices)
        mask = torch.zeros(BATCH_SIZE, 1, *SPATIAL_SHAPE, dtype=torch.bool)
        mask[indices[:, 0].long(), 0, indices[:, 1].long(), indices[:, 2].long(), indices[:, 3].long()] = True
        want = want * mask
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    cotangent = torch.randn_like(want)
    grad_sparse = torch.autograd.grad((got * cotangent).sum(), [features_sparse, conv.weight])
    grad_dense = torch.autograd.grad((want * cotangent).sum(), [features_dense, conv.weight])
    for sparse_grad, dense_grad in zip(grad_sparse, grad_dense, strict=True):
        torch.testing.assert_close(sparse_grad, dense_grad, rtol=1e-5, atol=1e-5)


def test_cpu_convolution_refuses_more_than_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        indices, features = random_sparse_input(2)
        with pytest.raises(RuntimeError, match="set_num_threads"):
            SubMConv3d(2, 2, 3)(SparseConvTensor(features, indices, list(SPATIAL_SHAPE), BATCH_SIZE))
    finally:
        torch.set_num_threads(threads)


def test_outputs_take_the_autocast_dtype():
    """spconv computes in float16 under any autocast; the adapter hands a bfloat16 region bfloat16 features."""
    from lrnn.pointcloud.sparse_conv import _in_autocast_dtype

    x = SparseConvTensor(torch.randn(3, 4), torch.zeros(3, 4, dtype=torch.int32), [1, 1, 3], 1)
    assert _in_autocast_dtype(x) is x
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _in_autocast_dtype(x).features.dtype == torch.bfloat16


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_backbones_run_under_autocast(single_thread, train, dtype):
    """SECOND (its BatchNorm hands a 16-bit convolution output to the next convolution) and LION under autocast, in
    eval and training mode: spconv's paths that ignore autocast get features in the weights' dtype. SECOND in
    bfloat16 stays close to float32 (at this random initialisation its eval-mode activations shrink below float16's
    range, and LION's post-norm LayerNorms magnify the rounding of its small initial mixer outputs)."""
    from lrnn.pointcloud.backbone import LION3DBackbone
    from lrnn.pointcloud.second_backbone import SECONDBackbone
    from pointcloud_testing import SMALL_LION, random_voxels

    coords, features = random_voxels([200, 150], (40, 56, 64), 5, seed=0)
    torch.manual_seed(0)
    backbones = {
        "second": SECONDBackbone({"CHANNELS": [8, 16, 16, 16], "OUTPUT_CHANNELS": 16}, 5, (64, 56, 40)),
        "lion": LION3DBackbone(SMALL_LION, 5, (64, 56, 40)),
    }
    batch = {"voxel_features": features, "voxel_coords": coords, "batch_size": 2}
    for name, backbone in backbones.items():
        backbone.train(train)
        with torch.no_grad():
            reference = backbone(dict(batch))["encoded_spconv_tensor"].features
            with torch.autocast("cpu", dtype=dtype):
                encoded = backbone(dict(batch))["encoded_spconv_tensor"].features
        assert encoded.dtype == dtype and torch.isfinite(encoded).all(), name
        if name == "second" and dtype == torch.bfloat16:
            scale = reference.abs().max()
            torch.testing.assert_close(encoded.float() / scale, reference / scale, atol=0.05, rtol=0)
