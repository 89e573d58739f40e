"""The timm face of both families: registry, pretrained configs that never download, features_only,
forward_intermediates, classifier reset, and loading a local file through ``pretrained_cfg_overlay``."""

import lrnn.vision  # noqa: F401  (registers the models)
import pytest
import timm
import torch
from timm.models._features import FeatureGetterNet, FeatureListNet

VIM_NAMES = [
    "vim_tiny_patch16_224",
    "vim_tiny_patch16_stride8_224",
    "vim_small_patch16_224",
    "vim_small_patch16_stride8_224",
    "vim_base_patch16_224",
]
VMAMBA_NAMES = ["vmamba_tiny_s1l8", "vmamba_small_s2l15", "vmamba_base_s2l15", "vmamba_tiny_v0"]
SMALL = {  # depth-reduced arguments for real forward passes
    "vim_tiny_patch16_224": dict(img_size=32, embed_dim=32, depth=4),
    "vmamba_tiny_s1l8": dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48)),
    "vmamba_tiny_v0": dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48), d_state=4),
}


def _small(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, **dict(SMALL[name], **kwargs)).eval()


def test_every_model_is_registered_with_a_pretrained_config_that_never_downloads():
    assert set(timm.list_models("vim_*")) == set(VIM_NAMES)
    assert set(timm.list_models("vmamba_*")) == set(VMAMBA_NAMES)
    assert not timm.list_pretrained("vim_*") and not timm.list_pretrained("vmamba_*")
    for name in VIM_NAMES + VMAMBA_NAMES:
        with torch.device("meta"):
            model = timm.create_model(name)
        cfg = model.pretrained_cfg
        assert not cfg.get("url") and not cfg.get("hf_hub_id") and cfg["input_size"] == (3, 224, 224)
        assert model.get_submodule(cfg["first_conv"]) is not None and model.get_classifier() is not None
    with pytest.raises(RuntimeError, match="No pretrained weights exist"):
        timm.create_model("vim_tiny_patch16_224", pretrained=True, **SMALL["vim_tiny_patch16_224"])


def test_vim_features_only_returns_patch_maps_of_the_chosen_blocks():
    images = torch.randn(2, 3, 32, 32)
    model = _small("vim_tiny_patch16_224")
    features = _small("vim_tiny_patch16_224", features_only=True, out_indices=(1, 3))
    assert isinstance(features, FeatureGetterNet)
    assert features.feature_info.channels() == [32, 32] and features.feature_info.reduction() == [16, 16]
    assert features.feature_info.module_name() == ["blocks.1", "blocks.3"]
    maps = features(images)
    assert [tuple(m.shape) for m in maps] == [(2, 32, 2, 2)] * 2
    expected = model.forward_intermediates(images, indices=(1, 3), intermediates_only=True)
    for got, want in zip(maps, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_vim_forward_intermediates_agree_with_forward_features():
    model = _small("vim_tiny_patch16_224")
    images = torch.randn(2, 3, 32, 32)
    tokens = model.forward_features(images)
    final, (last,) = model.forward_intermediates(images, indices=1, norm=True, output_fmt="NLC")
    torch.testing.assert_close(final, tokens)
    torch.testing.assert_close(last, tokens[:, [0, 1, 3, 4]])
    pairs = model.forward_intermediates(images, indices=[0, -1], return_prefix_tokens=True, intermediates_only=True)
    assert [(tuple(m.shape), tuple(c.shape)) for m, c in pairs] == [((2, 32, 2, 2), (2, 1, 32))] * 2
    early = model.forward_intermediates(images, indices=[1], stop_early=True, intermediates_only=True)
    assert len(early) == 1 and early[0].shape == (2, 32, 2, 2)


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vmamba_tiny_v0"])
def test_vmamba_features_only_returns_the_four_stages_channels_last(name):
    images = torch.randn(2, 3, 64, 64)
    model = _small(name)
    features = _small(name, features_only=True, out_indices=(0, 2, 3))
    assert isinstance(features, FeatureListNet)
    assert features.feature_info.channels() == [16, 32, 48] and features.feature_info.reduction() == [4, 16, 32]
    maps = features(images)
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 16), (2, 4, 4, 32), (2, 2, 2, 48)]
    expected = model.forward_intermediates(images, indices=(0, 2, 3), output_fmt="NHWC", intermediates_only=True)
    for got, want in zip(maps, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_vmamba_forward_intermediates_agree_with_forward_features():
    model = _small("vmamba_tiny_s1l8")
    images = torch.randn(2, 3, 64, 64)
    features = model.forward_features(images)
    final, maps = model.forward_intermediates(images, norm=True)
    torch.testing.assert_close(final, features)
    torch.testing.assert_close(maps[-1], features.permute(0, 3, 1, 2))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 16), (2, 24, 8, 8), (2, 32, 4, 4), (2, 48, 2, 2)]
    early = model.forward_intermediates(images, indices=[1], stop_early=True, intermediates_only=True)
    assert len(early) == 1 and early[0].shape == (2, 24, 8, 8)


@pytest.mark.parametrize("name", ["vim_tiny_patch16_224", "vmamba_tiny_s1l8"])
def test_reset_classifier_replaces_the_head(name):
    model = _small(name)
    images = torch.randn(2, 3, *((32, 32) if name.startswith("vim") else (64, 64)))
    model.reset_classifier(7)
    assert model(images).shape == (2, 7) and model.get_classifier().out_features == 7
    model.reset_classifier(0)
    pooled = model(images)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(pooled, model.forward_head(model.forward_features(images), pre_logits=True))


@pytest.mark.parametrize("name", ["vim_tiny_patch16_224", "vmamba_tiny_s1l8", "vmamba_tiny_v0"])
def test_pretrained_cfg_overlay_loads_a_local_file(name, tmp_path):
    source = _small(name)
    path = tmp_path / "weights.pth"
    torch.save({"model": source.state_dict()}, path)
    loaded = _small(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    for (key, want), got in zip(source.state_dict().items(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, msg=key)
    with pytest.warns(UserWarning, match="2 missing keys"):  # features_only: timm leaves the head out of the load
        features = _small(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), features_only=True)
    first = next(iter(features.parameters()))
    torch.testing.assert_close(first, next(iter(source.parameters())))


def test_a_new_class_count_loads_the_rest_and_names_the_dropped_head(tmp_path):
    """timm drops the 1000-class head and loads with strict=False; the model says which keys it left."""
    path = tmp_path / "weights.pth"
    torch.save(_small("vmamba_tiny_s1l8").state_dict(), path)
    with pytest.warns(UserWarning, match=r"2 missing keys .*'head\.fc\.weight', 'head\.fc\.bias'"):
        model = _small("vmamba_tiny_s1l8", pretrained=True, num_classes=3, pretrained_cfg_overlay=dict(file=str(path)))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
