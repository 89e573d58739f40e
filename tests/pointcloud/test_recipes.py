"""Every point-cloud recipe parses and builds its model; LION's backbone runs with every operator a config names."""

import sys

import pytest
import torch
from lightning.pytorch import LightningModule
from lrnn.configs import list_recipes, recipe_path
from lrnn.core.mixers import GLA, MLSTM, RWKV6, Mamba, RetNet
from lrnn.pointcloud.backbone import LION3DBackbone
from lrnn.pointcloud.lion_layer import LIONOperatorBlock
from pointcloud_testing import random_voxels

from lrnn.cli import LrnnCLI

RECIPES = [name for name in list_recipes() if name.startswith("pointcloud/")]
LION_KITTI_OPERATORS = {
    "pointcloud/lion_mamba_kitti.yaml": Mamba,
    "pointcloud/lion_retnet_kitti.yaml": RetNet,
    "pointcloud/lion_rwkv6_kitti.yaml": RWKV6,
}
OPERATORS = {
    "mamba": (Mamba, {"d_state": 4}),
    "retnet": (RetNet, {"num_heads": 2}),
    "rwkv6": (RWKV6, {"head_dim": 8, "mix_low_rank_dim": 4, "decay_low_rank_dim": 4}),
    "mlstm": (MLSTM, {"num_heads": 2}),
    "gla": (GLA, {"num_heads": 2}),
}
SPATIAL_SHAPE = (8, 24, 24)  # (Z, Y, X)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """spconv's CPU path needs one torch thread (tests/conftest.py)."""


def test_the_lion_kitti_recipes_are_all_listed():
    assert set(LION_KITTI_OPERATORS) <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_parses_and_builds_its_model(recipe, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lrnn"])  # LightningCLI reads pytest's own arguments otherwise
    args = ["--config", str(recipe_path(recipe)), f"--trainer.logger.init_args.save_dir={tmp_path}"]
    cli = LrnnCLI(args=args, run=False)
    assert isinstance(cli.model, LightningModule) and sum(p.numel() for p in cli.model.parameters()) > 0
    if recipe not in LION_KITTI_OPERATORS:
        return
    blocks = [module for module in cli.model.backbone.modules() if isinstance(module, LIONOperatorBlock)]
    assert len(blocks) == 2 * (4 * 2 * 2 + 1)  # x and y blocks: 4 stages of 2 levels, down and up, and the output
    assert all(isinstance(block.mixer, LION_KITTI_OPERATORS[recipe]) for block in blocks)
    mixers = [block.mixer for block in blocks]
    if recipe == "pointcloud/lion_retnet_kitti.yaml":
        assert all(mixer.num_heads == 2 and mixer.head_k_dim == 32 and mixer.head_v_dim == 64 for mixer in mixers)
    if recipe == "pointcloud/lion_rwkv6_kitti.yaml":
        assert all(mixer.bidirectional and mixer.num_heads == 4 and mixer.head_dim == 16 for mixer in mixers)
    if recipe != "pointcloud/lion_mamba_kitti.yaml":
        assert all(block.drop_path.drop_prob == 0.2 and block.mlp is not None for block in blocks)


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_lion_backbone_runs_forward_and_backward_with_every_operator(operator):
    mixer_class, cfg = OPERATORS[operator]
    model_cfg = {
        "FEATURE_DIM": 16,
        "OPERATOR": {"NAME": operator, "CFG": cfg},
        "DEPTHS": [1, 1],
        "WINDOW_SHAPE": [[8, 8, 8], [8, 8, 4]],
        "GROUP_SIZE": [64, 64],
        "OUTPUT_WINDOW_SHAPE": [8, 8, 2],
        "OUTPUT_GROUP_SIZE": 32,
    }
    torch.manual_seed(0)
    backbone = LION3DBackbone(model_cfg, 4, SPATIAL_SHAPE[::-1])
    assert {type(module) for module in backbone.modules()} >= {mixer_class}
    coords, features = random_voxels([250, 150], SPATIAL_SHAPE, 4)
    features.requires_grad_()
    encoded = backbone({"voxel_features": features, "voxel_coords": coords, "batch_size": 2})["encoded_spconv_tensor"]
    assert encoded.features.shape[1] == 16 and torch.isfinite(encoded.features).all()
    encoded.features.square().sum().backward()
    assert features.grad.abs().sum(1).gt(0).all()
    for name, parameter in backbone.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
