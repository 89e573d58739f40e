import importlib.resources
from types import SimpleNamespace

import pytest
import torch
import yaml
from lrnn.pointcloud.backbone import LION3DBackbone, LION3DMiddleEncoder, LIONBlock, height_compression, read_config
from lrnn.pointcloud.sparse_conv import SparseConvTensor, to_dense

GRID_SIZE = (20, 18, 8)  # (X, Y, Z), OpenPCDet's order
SPATIAL_SHAPE = (8, 18, 20)  # (Z, Y, X)
DIM = 16
OPERATORS = {"mamba": {"d_state": 4}, "retnet": {"num_heads": 2, "expand_v": 2.0}}


def model_cfg(operator: str) -> dict:
    """A two-stage LION in OpenPCDet's upper-case keys: grid height 8 -> 4 -> 2."""
    return {
        "FEATURE_DIM": DIM,
        "OPERATOR": {"NAME": operator, "CFG": OPERATORS[operator]},
        "DEPTHS": [2, 1],
        "WINDOW_SHAPE": [[6, 6, 8], [6, 6, 4]],
        "GROUP_SIZE": [48, 32],
        "OUTPUT_WINDOW_SHAPE": [6, 6, 2],
        "OUTPUT_GROUP_SIZE": 16,
    }


def make_backbone(operator: str, input_channels: int = 4, **options) -> LION3DBackbone:
    """``options`` are extra model_cfg keys."""
    torch.manual_seed(0)
    cfg = {**model_cfg(operator), **options}
    return LION3DBackbone(cfg, input_channels, GRID_SIZE, [0.2, 0.2, 0.125], [0, -1.8, -3, 4, 1.8, -2])


@pytest.fixture
def batch(random_voxels):
    coords, features = random_voxels([180, 120], SPATIAL_SHAPE, 4)
    return {"voxel_features": features, "voxel_coords": coords, "batch_size": 2}


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_openpcdet_contract_shapes_and_gradients_reach_every_parameter(operator, batch):
    backbone = make_backbone(operator)
    batch["voxel_features"].requires_grad_()
    out = backbone(batch)
    encoded = out["encoded_spconv_tensor"]
    assert isinstance(encoded, SparseConvTensor) and out["encoded_spconv_tensor_stride"] == 1
    assert backbone.num_point_features == DIM and backbone.num_bev_features == 2 * DIM
    assert encoded.spatial_shape == backbone.output_spatial_shape == [2, 18, 20]
    merged_cells = {(b, z // 4, y, x) for b, z, y, x in batch["voxel_coords"].tolist()}
    assert {tuple(row) for row in encoded.indices.tolist()} == merged_cells and len(merged_cells) == len(
        encoded.indices
    )
    assert encoded.features.shape == (len(merged_cells), DIM) and torch.isfinite(encoded.features).all()
    encoded.features.square().sum().backward()
    assert batch["voxel_features"].grad.abs().sum(1).gt(0).all()
    for name, parameter in backbone.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_voxel_generation_grows_the_voxels_and_keeps_the_contract(batch):
    backbone = make_backbone("mamba", DIFFUSION=True, DIFF_SCALE=0.2)
    assert all(merge.diffusion and merge.diff_scale == 0.2 for merge in backbone.stage_merges)
    assert not any(merge.diffusion for stage in backbone.stages for merge in stage.merges)
    batch["voxel_features"].requires_grad_()
    out = backbone(batch)
    encoded = out["encoded_spconv_tensor"]
    assert isinstance(encoded, SparseConvTensor) and out["encoded_spconv_tensor_stride"] == 1
    assert encoded.spatial_shape == backbone.output_spatial_shape == [2, 18, 20]
    cells = [tuple(row) for row in encoded.indices.tolist()]
    merged_cells = {(b, z // 4, y, x) for b, z, y, x in batch["voxel_coords"].tolist()}
    assert len(set(cells)) == len(cells) and set(cells) > merged_cells
    columns = {(b, y, x) for b, _, y, x in batch["voxel_coords"].tolist()}
    for b, z, y, x in cells:  # two generations: at most 2 voxels from an input column, in the grid
        assert 0 <= z < 2 and 0 <= y < 18 and 0 <= x < 20
        assert any((b, y + dy, x + dx) in columns for dy in range(-2, 3) for dx in range(-2, 3))
    assert encoded.features.shape == (len(cells), DIM) and torch.isfinite(encoded.features).all()
    encoded.features.square().sum().backward()
    assert batch["voxel_features"].grad.abs().sum(1).gt(0).all()
    for name, parameter in backbone.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("diffusion", [False, True])
def test_voxel_order_does_not_change_the_output(batch, diffusion):
    backbone = make_backbone("retnet", DIFFUSION=diffusion).eval()
    permutation = torch.randperm(len(batch["voxel_coords"]), generator=torch.Generator().manual_seed(1))
    permuted = {**batch, "voxel_features": batch["voxel_features"][permutation]}
    permuted["voxel_coords"] = batch["voxel_coords"][permutation]
    with torch.no_grad():
        dense = to_dense(backbone(dict(batch))["encoded_spconv_tensor"])
        dense_permuted = to_dense(backbone(permuted)["encoded_spconv_tensor"])
    torch.testing.assert_close(dense_permuted, dense, rtol=1e-4, atol=1e-4)


def test_config_as_attributes_and_lion_block_layout():
    cfg = SimpleNamespace(**{key.lower(): value for key, value in model_cfg("mamba").items()})
    cfg.operator = "Mamba"
    cfg.operator_cfg = {"d_state": 4}
    backbone = LION3DBackbone(cfg, DIM, GRID_SIZE)
    assert backbone.config["operator"] == "mamba"
    assert backbone.stages[0].encoder[0].blocks[0].mixer.bidirectional  # LION's Mamba scans both ways
    assert isinstance(backbone.input_projection, torch.nn.Identity)
    block = backbone.stages[0]
    assert isinstance(block, LIONBlock) and len(block.encoder) == len(block.decoder) == 2
    assert [layer.shift for layer in block.encoder] == [False, True] == [layer.shift for layer in block.decoder]
    assert sum(len(layer.blocks) for layer in block.encoder) == 4  # x and y directions per layer


def test_config_errors_name_the_key():
    with pytest.raises(KeyError, match="GROUP_SIZE"):
        LION3DBackbone({k: v for k, v in model_cfg("mamba").items() if k != "GROUP_SIZE"}, 4, GRID_SIZE)
    with pytest.raises(ValueError, match="WINDOW_SHAPE"):
        LION3DBackbone({**model_cfg("mamba"), "WINDOW_SHAPE": [[6, 6, 8]]}, 4, GRID_SIZE)
    with pytest.raises(ValueError, match="DIFF_SCALE"):
        LION3DBackbone({**model_cfg("mamba"), "DIFFUSION": True, "DIFF_SCALE": 1.2}, 4, GRID_SIZE)


def test_diffusion_keys_in_upper_case_attributes_and_the_kitti_recipe():
    assert (read_config(model_cfg("mamba"))["diffusion"], read_config(model_cfg("mamba"))["diff_scale"]) == (False, 0.2)
    config = read_config({**model_cfg("mamba"), "DIFFUSION": True, "DIFF_SCALE": 0.3})
    assert (config["diffusion"], config["diff_scale"]) == (True, 0.3)
    attributes = SimpleNamespace(**{key.lower(): value for key, value in model_cfg("mamba").items()})
    attributes.diffusion, attributes.diff_scale = True, 0.25
    merge = LION3DBackbone(attributes, 4, GRID_SIZE).stage_merges[0]
    assert merge.diffusion and merge.diff_scale == 0.25
    recipe = importlib.resources.files("lrnn.configs") / "pointcloud" / "lion_mamba_kitti.yaml"
    kitti = read_config(yaml.safe_load(recipe.read_text())["model"]["init_args"]["model_cfg"])
    assert (kitti["diffusion"], kitti["diff_scale"]) == (True, 0.2)


def test_middle_encoder_gives_the_height_compressed_bev(batch):
    torch.manual_seed(0)
    encoder = LION3DMiddleEncoder(4, SPATIAL_SHAPE, model_cfg("retnet"))
    bev = encoder(batch["voxel_features"], batch["voxel_coords"], 2)
    assert bev.shape == (2, 2 * DIM, 18, 20)
    encoded = encoder.backbone(dict(batch))["encoded_spconv_tensor"]
    b, z, y, x = encoded.indices[0].long().tolist()
    torch.testing.assert_close(bev[b, z::2, y, x], encoded.features[0])  # channel c * D + z
    torch.testing.assert_close(height_compression(encoded), bev)


def test_from_pretrained_round_trip_and_key_errors(tmp_path, batch):
    backbone = make_backbone("retnet").eval()
    backbone.save_pretrained(tmp_path / "lion.pt")
    loaded = LION3DBackbone.from_pretrained(tmp_path / "lion.pt").eval()
    with torch.no_grad():
        want = backbone(dict(batch))["encoded_spconv_tensor"].features
        torch.testing.assert_close(loaded(dict(batch))["encoded_spconv_tensor"].features, want)

    state_dict = backbone.state_dict()
    missing_key = "output_layer.blocks.0.norm.weight"
    tampered = {key: value for key, value in state_dict.items() if key != missing_key}
    tampered["stages.0.extra.weight"] = torch.zeros(1)
    torch.save(tampered, tmp_path / "tampered.pt")
    with pytest.raises(KeyError, match=r"1 missing keys \['output_layer.blocks.0.norm.weight'\]") as error:
        make_backbone("retnet").load_pretrained(tmp_path / "tampered.pt")
    assert "1 unexpected keys ['stages.0.extra.weight']" in str(error.value)
    with pytest.raises(KeyError, match="load_pretrained"):
        LION3DBackbone.from_pretrained(tmp_path / "tampered.pt")
