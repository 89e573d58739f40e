"""SECONDBackbone (VoxelBackBone8x) on the CPU: OpenPCDet's contract, the active sites of every level against the
convolution arithmetic, gradients, parameter names, input checks. spconv's CPU path runs on one torch thread."""

import itertools
from types import SimpleNamespace

import pytest
import torch
from lrnn.pointcloud.second_backbone import SECONDBackbone
from lrnn.pointcloud.sparse_conv import SparseConvTensor
from pointcloud_testing import random_voxels

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRID_SIZE = (48, 40, 40)  # (X, Y, Z): the backbone's grid is (41, 40, 48)
LEVELS = {  # name: (channels, spatial shape (Z, Y, X))
    "x_conv1": (16, [41, 40, 48]),
    "x_conv2": (32, [21, 20, 24]),
    "x_conv3": (64, [11, 10, 12]),
    "x_conv4": (64, [5, 5, 6]),
}
DOWN = [(3, 2, (1, 1, 1)), (3, 2, (1, 1, 1)), (3, 2, (0, 1, 1))]  # (kernel, stride, padding (z, y, x)) per level


@pytest.fixture
def batch():
    """Two samples of 1,800 and 1,200 voxels with 5 features (Waymo's x, y, z, intensity, elongation)."""
    x, y, z = GRID_SIZE
    coords, features = random_voxels([1800, 1200], (z, y, x), 5)
    return {"voxel_features": features, "voxel_coords": coords, "batch_size": 2}


def strided_sites(sites: set, shape: list[int], kernel, stride, padding) -> set:
    """Output sites ``(b, z, y, x)`` of a regular sparse convolution: ``o`` is active when ``o * s - p + k`` is an
    input site for some kernel offset ``0 <= k < kernel``, per axis; ``shape`` is the output grid."""
    out = set()
    for b, *position in sites:
        per_axis = [
            [(i + p - k) // s for k in range(kn) if (i + p - k) % s == 0 and 0 <= (i + p - k) // s < n]
            for i, kn, s, p, n in zip(position, kernel, stride, padding, shape, strict=True)
        ]
        out.update((b, *o) for o in itertools.product(*per_axis))
    return out


def test_openpcdet_contract_active_sites_and_gradients(batch):
    torch.manual_seed(0)
    backbone = SECONDBackbone({}, 5, GRID_SIZE, [0.32, 0.32, 0.15], [-7.68, -6.4, -2.0, 7.68, 6.4, 4.0])
    batch["voxel_features"].requires_grad_()
    out = backbone(batch)
    encoded = out["encoded_spconv_tensor"]
    assert isinstance(encoded, SparseConvTensor) and out["encoded_spconv_tensor_stride"] == 8
    assert backbone.num_point_features == 128 and backbone.num_bev_features == 256
    assert encoded.spatial_shape == backbone.output_spatial_shape == [2, 5, 6]
    assert backbone.backbone_channels == {name: channels for name, (channels, _) in LEVELS.items()}
    assert out["multi_scale_3d_strides"] == {"x_conv1": 1, "x_conv2": 2, "x_conv3": 4, "x_conv4": 8}

    sites = {tuple(row) for row in batch["voxel_coords"].tolist()}
    for level, (name, (channels, shape)) in enumerate(LEVELS.items()):
        if level > 0:
            kernel, stride, padding = DOWN[level - 1]
            sites = strided_sites(sites, shape, (kernel,) * 3, (stride,) * 3, padding)
        x = out["multi_scale_3d_features"][name]
        assert list(x.spatial_shape) == shape, name
        assert x.features.shape == (len(sites), channels), name
        assert {tuple(row) for row in x.indices.tolist()} == sites, name
    sites = strided_sites(sites, [2, 5, 6], (3, 1, 1), (2, 1, 1), (0, 0, 0))
    assert encoded.features.shape == (len(sites), 128) and torch.isfinite(encoded.features).all()
    assert {tuple(row) for row in encoded.indices.tolist()} == sites

    encoded.features.square().sum().backward()
    assert batch["voxel_features"].grad.abs().sum() > 0
    for name, parameter in backbone.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_parameter_names_and_shapes_follow_voxel_backbone_8x():
    shapes = {name: tuple(p.shape) for name, p in SECONDBackbone({}, 4, GRID_SIZE).state_dict().items()}
    assert shapes["conv_input.0.weight"] == (16, 3, 3, 3, 4)  # [C_out, k_z, k_y, k_x, C_in]
    assert shapes["conv_input.1.running_var"] == (16,)
    assert shapes["conv1.0.0.weight"] == (16, 3, 3, 3, 16)
    assert shapes["conv2.0.0.weight"] == (32, 3, 3, 3, 16) and shapes["conv2.2.0.weight"] == (32, 3, 3, 3, 32)
    assert shapes["conv4.0.0.weight"] == (64, 3, 3, 3, 64) and shapes["conv4.2.1.bias"] == (64,)
    assert shapes["conv_out.0.weight"] == (128, 3, 1, 1, 64) and shapes["conv_out.1.weight"] == (128,)
    assert not any(name.endswith(".0.bias") for name in shapes)  # convolutions without bias, as OpenPCDet


def test_channels_from_an_attribute_config_in_lower_case(batch):
    backbone = SECONDBackbone(SimpleNamespace(channels=[8, 8, 16, 16], output_channels=32), 5, GRID_SIZE).eval()
    with torch.no_grad():
        encoded = backbone(batch)["encoded_spconv_tensor"]
    assert encoded.features.shape[1] == backbone.num_point_features == 32
    assert backbone.num_bev_features == 64


def test_bad_inputs_and_configs_are_refused(batch):
    backbone = SECONDBackbone({}, 4, GRID_SIZE)
    with pytest.raises(ValueError, match=r"voxel_features must be \[N, 4\]"):
        backbone(batch)
    with pytest.raises(ValueError, match="CHANNELS must be four positive numbers"):
        SECONDBackbone({"CHANNELS": [16, 32, 64]}, 4, GRID_SIZE)
