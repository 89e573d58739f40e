import pytest
import torch
from lrnn.core.mixers import MLSTM
from lrnn.core.mixers.rwkv_channel_mix import RWKVChannelMix
from lrnn.pointcloud.lion_layer import LIONLayer, LIONOperatorBlock
from pointcloud_testing import SMALL_LION, random_voxels
from torch import nn

SPATIAL_SHAPE = (4, 24, 30)  # (Z, Y, X)
CHANNELS = 16
OPERATORS = {
    "mamba": {"bidirectional": True, "d_state": 4},
    "retnet": {"num_heads": 2, "expand_v": 2.0},
    "rwkv6": {"head_dim": 8, "mix_low_rank_dim": 4, "decay_low_rank_dim": 4},
    "mlstm": {"num_heads": 2},
    "gla": {"num_heads": 2},
}


def voxels(counts: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique ``coords [N, 4]`` (batch, z, y, x), ``counts[b]`` in sample ``b``, and features ``[N, CHANNELS]``."""
    return random_voxels(counts, SPATIAL_SHAPE, CHANNELS, seed)


def make_layer(operator: str, shift: bool = True) -> LIONLayer:
    torch.manual_seed(0)
    return LIONLayer(CHANNELS, (13, 13, 4), 64, operator, OPERATORS[operator], shift=shift)


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_shapes_and_gradients_reach_every_parameter(operator):
    coords, features = voxels([150, 90])
    layer = make_layer(operator)
    with torch.no_grad():  # off the initial values, some zero (RWKV-6's LoRA A), which block their partners' grads
        for parameter in layer.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    features.requires_grad_()
    out = layer(features, coords, 2, SPATIAL_SHAPE)
    assert out.shape == features.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert features.grad.abs().sum(1).gt(0).all()  # every voxel is read by some group
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_voxel_order_does_not_change_the_output(operator):
    coords, features = voxels([150, 90])
    layer = make_layer(operator)
    permutation = torch.randperm(len(coords), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = layer(features, coords, 2, SPATIAL_SHAPE)
        out_permuted = layer(features[permutation], coords[permutation], 2, SPATIAL_SHAPE)
    torch.testing.assert_close(out_permuted, out[permutation], rtol=1e-5, atol=1e-5)


def test_block_layouts_follow_lion():
    mamba = LIONOperatorBlock("mamba", CHANNELS, {"bidirectional": True})
    retnet = LIONOperatorBlock("retnet", CHANNELS, {"num_heads": 2})
    assert not mamba.norm_first and mamba.mlp is None
    assert retnet.norm_first and retnet.mlp[0].out_features == 4 * CHANNELS


def test_lion_operator_defaults_scan_both_ways_and_yield_to_operator_cfg():
    mamba = LIONOperatorBlock("mamba", CHANNELS, {"d_state": 4})
    rwkv6 = LIONOperatorBlock("rwkv6", CHANNELS, OPERATORS["rwkv6"])
    causal = LIONOperatorBlock("rwkv6", CHANNELS, {**OPERATORS["rwkv6"], "bidirectional": False})
    assert mamba.mixer.bidirectional and rwkv6.mixer.bidirectional and not causal.mixer.bidirectional


def test_mlstm_runs_lions_xlstm_pair_per_direction_forward_then_reversed():
    layer = make_layer("mlstm").double()
    for pair in layer.blocks:
        assert isinstance(pair, nn.Sequential) and [type(block.mixer) for block in pair] == [MLSTM, MLSTM]
        assert [block.mixer.reverse for block in pair] == [False, True]
        assert pair[0].mixer.q_proj.weight is not pair[1].mixer.q_proj.weight
    reverse_block = layer.blocks[0][1]
    causal_twin = LIONOperatorBlock("mlstm", CHANNELS, OPERATORS["mlstm"]).double()
    causal_twin.load_state_dict(reverse_block.state_dict())
    x = torch.randn(3, 20, CHANNELS, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(reverse_block(x), causal_twin(x.flip(1)).flip(1))


def test_checkpointed_block_gives_the_same_gradients():
    x = torch.randn(3, 20, CHANNELS, requires_grad=True)
    torch.manual_seed(0)
    plain = LIONOperatorBlock("retnet", CHANNELS, {"num_heads": 2})
    torch.manual_seed(0)
    checkpointed = LIONOperatorBlock("retnet", CHANNELS, {"num_heads": 2}, use_checkpoint=True)
    grads = [torch.autograd.grad(block(x).sum(), x)[0] for block in (plain, checkpointed)]
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="drop_path"):
        LIONLayer(CHANNELS, (13, 13, 4), 64, "retnet", drop_path=[0.1])
    with pytest.raises(ValueError, match="directions"):
        LIONLayer(CHANNELS, (13, 13, 4), 64, "retnet", directions=("x", "z"))
    coords, features = voxels([10])
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        make_layer("retnet")(features[:5], coords, 1, SPATIAL_SHAPE)


def test_rwkv6_blocks_start_with_lions_layer_scale():
    """LION's RWKV blocks scale each residual branch by a learned per-channel factor starting at 1e-5."""
    torch.manual_seed(0)
    block = LIONOperatorBlock("rwkv6", 16, {"head_dim": 8}, layer_idx=1, num_layers=4)
    assert torch.equal(block.mixer_scale, torch.full((16,), 1e-5)) and block.mlp_scale is not None
    x = torch.randn(2, 12, 16)
    assert (block(x) - x).abs().max() < 1e-3  # both branches start near zero
    plain = LIONOperatorBlock("retnet", 16, {"num_heads": 2})
    assert plain.mixer_scale is None and plain.mlp_scale is None
    assert LIONOperatorBlock("retnet", 16, {"num_heads": 2}, layer_scale=0.5).mixer_scale[0] == 0.5


def test_rwkv6_blocks_follow_lions_rwkv_block():
    """Vision-RWKV's block as LION builds it: channel mixing as the FFN, time and channel mixing initialised from the
    block's index, and the first block (index 0) normalising its input once more."""
    torch.manual_seed(0)
    first = LIONOperatorBlock("rwkv6", 16, {"head_dim": 8}, layer_idx=0, num_layers=4)
    later = LIONOperatorBlock("rwkv6", 16, {"head_dim": 8}, layer_idx=3, num_layers=4)
    assert isinstance(first.mlp, RWKVChannelMix) and first.input_norm is not None and later.input_norm is None
    assert not torch.equal(first.mixer.decay, later.mixer.decay)
    assert not torch.equal(first.mlp.mix_k, later.mlp.mix_k)
    x = 3 + 2 * torch.randn(2, 12, 16)
    torch.testing.assert_close(first(x), first.input_norm(x), atol=1e-3, rtol=0)  # branches start near zero
    retnet = LIONOperatorBlock("retnet", 16, {"num_heads": 2})
    assert isinstance(retnet.mlp, nn.Sequential) and retnet.input_norm is None
    assert retnet.mixer.g_proj is None and not retnet.mixer.rotary  # LION's retention: no gate, no rotation
    assert retnet.norm.eps == retnet.mlp_norm.eps == 1e-6 and first.norm.eps == 1e-5


def test_backbone_numbers_its_operator_blocks_as_lion_does():
    """LION's ``layer_id`` of ``n_layer``: 8 a stage of depth 2 (two layers down, two up, two directions each),
    then the output layer; 34 in LION's four-stage backbone."""
    from lrnn.pointcloud.backbone import LION3DBackbone

    config = {**SMALL_LION, "DEPTHS": [2, 2], "LAYER_DOWN_SCALES": [[[2, 2, 2]] * 2] * 2}
    backbone = LION3DBackbone(config, 4, (24, 20, 8))
    blocks = [module for module in backbone.modules() if isinstance(module, LIONOperatorBlock)]
    assert [block.layer_idx for block in blocks] == list(range(18))
    assert {block.num_layers for block in blocks} == {18}
