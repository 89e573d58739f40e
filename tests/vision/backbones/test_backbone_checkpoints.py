"""Checkpoints released by the Vim and VMamba authors, stood in for by state dicts built from their key lists and
shapes: remapped by ``checkpoint_filter_fn`` and loaded strictly; missing or unexpected keys are always reported."""

import pytest
import timm
import torch
from backbone_official_keys import (
    state_dict_from,
    vim_official_shapes,
    vmamba_v0_official_shapes,
    vmamba_v2_official_shapes,
)
from lrnn.vision.backbones import vim, vmamba

FULL_SIZE = {  # name: official shapes of the released checkpoint
    "vim_tiny_patch16_224": vim_official_shapes(192, 24, 196),
    "vim_small_patch16_stride8_224": vim_official_shapes(384, 24, 729),
    "vim_base_patch16_224": vim_official_shapes(768, 24, 196),
    "vmamba_tiny_s1l8": vmamba_v2_official_shapes((2, 2, 8, 2), (96, 192, 384, 768), 1.0),
    "vmamba_small_s2l15": vmamba_v2_official_shapes((2, 2, 15, 2), (96, 192, 384, 768), 2.0),
    "vmamba_base_s2l15": vmamba_v2_official_shapes((2, 2, 15, 2), (128, 256, 512, 1024), 2.0),
    "vmamba_tiny_v0": vmamba_v0_official_shapes((2, 2, 9, 2), (96, 192, 384, 768), first_release=False),
    "vmamba_tiny_v0 (first release)": vmamba_v0_official_shapes((2, 2, 9, 2), (96, 192, 384, 768), first_release=True),
}
SMALL_VIM = dict(img_size=32, embed_dim=32, depth=2)
SMALL_VMAMBA = dict(depths=(1, 1, 2, 1), dims=(16, 24, 32, 48))


def _filter(name: str):
    return vim.checkpoint_filter_fn if name.startswith("vim") else vmamba.checkpoint_filter_fn


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_official_checkpoints_load_strictly_after_remapping(name):
    """Every released name and shape finds its parameter (meta tensors: nothing is allocated)."""
    architecture = name.split(" ")[0]
    with torch.device("meta"):
        model = timm.create_model(architecture)
    checkpoint = {"model": state_dict_from(FULL_SIZE[name], device="meta")}
    model.load_state_dict(_filter(architecture)(checkpoint, model), strict=True, assign=True)


@pytest.mark.parametrize(
    ("name", "shapes", "pairs"),
    [
        (
            "vim_tiny_patch16_224",
            vim_official_shapes(32, 2, 4, num_classes=1000),
            {
                "layers.1.mixer.A_b_log": "blocks.1.mixer.A_b_log",
                "layers.0.mixer.x_proj_b.weight": "blocks.0.mixer.x_proj_b.weight",
                "layers.1.norm.weight": "blocks.1.norm.weight",
                "norm_f.weight": "norm.weight",
                "cls_token": "cls_token",
                "pos_embed": "pos_embed",
            },
        ),
        (
            "vmamba_tiny_s1l8",
            vmamba_v2_official_shapes((1, 1, 2, 1), (16, 24, 32, 48), 1.0),
            {
                "patch_embed.0.weight": "stem.conv1.weight",
                "patch_embed.2.bias": "stem.norm1.bias",
                "patch_embed.5.weight": "stem.conv2.weight",
                "patch_embed.7.weight": "stem.norm2.weight",
                "layers.2.blocks.1.op.A_logs": "stages.2.blocks.1.mixer.A_logs",
                "layers.2.blocks.1.op.x_proj_weight": "stages.2.blocks.1.mixer.x_proj_weight",
                "layers.0.blocks.0.norm2.weight": "stages.0.blocks.0.norm2.weight",
                "layers.0.downsample.1.weight": "stages.1.downsample.conv.weight",
                "layers.2.downsample.3.bias": "stages.3.downsample.norm.bias",
                "classifier.norm.weight": "norm.weight",
                "classifier.head.weight": "head.fc.weight",
            },
        ),
        (
            "vmamba_tiny_v0",
            vmamba_v0_official_shapes((1, 1, 2, 1), (16, 24, 32, 48), first_release=False),
            {
                "patch_embed.0.weight": "stem.conv.weight",
                "patch_embed.2.weight": "stem.norm.weight",
                "layers.1.blocks.0.op.in_proj.weight": "stages.1.blocks.0.mixer.in_proj.weight",
                "layers.1.blocks.0.op.conv2d.bias": "stages.1.blocks.0.mixer.conv2d.bias",
                "layers.0.downsample.1.weight": "stages.1.downsample.norm.weight",
                "layers.1.downsample.2.weight": "stages.2.downsample.reduction.weight",
                "classifier.head.bias": "head.fc.bias",
            },
        ),
        (
            "vmamba_tiny_v0",
            vmamba_v0_official_shapes((1, 1, 2, 1), (16, 24, 32, 48), first_release=True),
            {
                "patch_embed.proj.weight": "stem.conv.weight",
                "patch_embed.norm.bias": "stem.norm.bias",
                "layers.2.blocks.1.ln_1.weight": "stages.2.blocks.1.norm.weight",
                "layers.2.blocks.1.self_attention.dt_projs_bias": "stages.2.blocks.1.mixer.dt_projs_bias",
                "layers.0.downsample.norm.weight": "stages.1.downsample.norm.weight",
                "layers.2.downsample.reduction.weight": "stages.3.downsample.reduction.weight",
                "norm.weight": "norm.weight",
                "head.weight": "head.fc.weight",
            },
        ),
    ],
    ids=["vim", "vmamba-v2", "vmamba-v0", "vmamba-v0-first-release"],
)
def test_each_official_tensor_lands_in_its_parameter(name, shapes, pairs, tmp_path):
    """Values, not just names: distinct random tensors go through timm's file loading and arrive where the
    hand-written correspondence says (same-shaped tensors, like the stem norms, cannot be swapped unnoticed)."""
    official = state_dict_from(shapes)
    path = tmp_path / "official.pth"
    torch.save({"model": official, "epoch": 300}, path)
    small = SMALL_VIM if name.startswith("vim") else SMALL_VMAMBA
    overlay = dict(file=str(path))
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **small)
    ours = model.state_dict()
    assert len(ours) == len(official)
    for official_key, our_key in pairs.items():
        torch.testing.assert_close(ours[our_key], official[official_key], msg=f"{official_key} -> {our_key}")


def test_vim_position_embedding_is_resampled_around_the_middle_class_token():
    """A 2 x 2-patch embedding loaded into a 4 x 4-patch model: the class slot moves from 2 to 8 unchanged."""
    shapes = vim_official_shapes(32, 2, 4)
    official = state_dict_from(shapes)
    model = vim.VisionMamba(img_size=64, embed_dim=32, depth=2)
    remapped = vim.checkpoint_filter_fn(official, model)
    assert remapped["pos_embed"].shape == (1, 17, 32)
    torch.testing.assert_close(remapped["pos_embed"][:, 8], official["pos_embed"][:, 2])
    model.load_state_dict(remapped)


def test_strict_loading_names_every_missing_and_unexpected_key():
    model = vmamba.VMamba(**SMALL_VMAMBA)
    state = model.state_dict()
    del state["stages.2.blocks.1.mixer.Ds"], state["head.fc.bias"]
    state["stages.9.blocks.0.mixer.A_logs"] = torch.zeros(1)
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    for key in ("stages.2.blocks.1.mixer.Ds", "head.fc.bias", "stages.9.blocks.0.mixer.A_logs", "checkpoint_filter_fn"):
        assert key in message


def test_non_strict_loading_warns_with_every_missing_and_unexpected_key():
    """An official Vim checkpoint loaded without its filter: nothing of the blocks matches, and the warning says
    so key by key instead of leaving the blocks at their initial values silently."""
    model = vim.VisionMamba(**SMALL_VIM)
    official = state_dict_from(vim_official_shapes(32, 2, 4))
    with pytest.warns(UserWarning) as warnings:
        result = model.load_state_dict(official, strict=False)
    assert set(result.unexpected_keys) == {key for key in official if key.startswith("layers.")} | {"norm_f.weight"}
    assert set(result.missing_keys) == {key for key in model.state_dict() if key.startswith(("blocks.", "norm."))}
    message = str(warnings[0].message)
    for key in [*result.missing_keys, *result.unexpected_keys]:
        assert repr(key) in message


def test_our_own_checkpoints_pass_the_filters_unchanged():
    vmamba_model, vim_model = vmamba.VMamba(**SMALL_VMAMBA), vim.VisionMamba(**SMALL_VIM)
    state = vmamba_model.state_dict()
    assert vmamba.checkpoint_filter_fn({"state_dict": state}, vmamba_model) is state
    state = vim_model.state_dict()
    remapped = vim.checkpoint_filter_fn({"model": state}, vim_model)
    assert remapped.keys() == state.keys() and all(remapped[key] is value for key, value in state.items())
