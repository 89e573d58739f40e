"""Vision Mamba on small inputs: training step, token layout, the bidirectional mixer, errors."""

import copy

import pytest
import timm
import torch
from lrnn.vision.backbones import VisionMamba

SMALL = dict(img_size=32, embed_dim=32, depth=2, num_classes=10)


def _small(**overrides) -> VisionMamba:
    torch.manual_seed(0)
    return VisionMamba(**dict(SMALL, **overrides))


def test_forward_backward_reaches_every_parameter():
    model = _small(drop_path_rate=0.1)
    images = torch.randn(2, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (2, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_class_token_sits_in_the_middle_and_is_what_the_head_reads():
    model = _small().eval()
    images = torch.randn(2, 3, 32, 32)
    tokens = model.forward_features(images)
    assert tokens.shape == (2, 2 * 2 + 1, 32) and model.cls_index == 2
    assert torch.equal(model.forward_head(tokens, pre_logits=True), tokens[:, 2])
    embedded = model._embed(images)
    expected = (model.cls_token + model.pos_embed[:, 2:3]).expand(2, -1, -1)
    torch.testing.assert_close(embedded[:, 2:3], expected)
    model.reset_classifier(0, global_pool="avg")
    torch.testing.assert_close(model(images), tokens[:, [0, 1, 3, 4]].mean(1))


@pytest.mark.parametrize("precision", ["autocast", "bfloat16 weights"])
def test_residual_stream_stays_float32_in_bfloat16(precision):
    """Vim's ``residual_in_fp32``: every block receives and returns a float32 stream, also when the weights
    themselves are bfloat16; the mixers run in bfloat16."""
    model, images = _small().eval(), torch.randn(1, 3, 32, 32)
    streams, mixer_inputs = [], []
    for block in model.blocks:
        block.register_forward_hook(lambda module, args, out: streams.append((args[0].dtype, out.dtype)))
        block.mixer.register_forward_pre_hook(lambda module, args: mixer_inputs.append(args[0].dtype))
    if precision == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(images)
    else:
        logits = model.to(torch.bfloat16)(images.to(torch.bfloat16))
        assert mixer_inputs == [torch.bfloat16] * 2
    assert streams == [(torch.float32, torch.float32)] * 2
    assert torch.isfinite(logits).all()


def _swap_directions(mixer: torch.nn.Module) -> torch.nn.Module:
    swapped = copy.deepcopy(mixer)
    pairs = [
        ("conv1d", "conv1d_b"),
        ("x_proj", "x_proj_b"),
        ("dt_proj", "dt_proj_b"),
        ("A_log", "A_b_log"),
        ("D", "D_b"),
    ]
    for forward, backward in pairs:
        a, b = getattr(swapped, forward), getattr(swapped, backward)
        setattr(swapped, forward, b)
        setattr(swapped, backward, a)
    return swapped


def test_bidirectional_mixer_reads_the_sequence_both_ways():
    """Reversing the tokens and exchanging the forward and backward parameters reverses the output: the backward
    branch is the forward one run from the end. Without the exchange the output is not symmetric."""
    mixer = _small().blocks[0].mixer
    x = torch.randn(2, 9, 32)
    y = mixer(x)[0]
    torch.testing.assert_close(_swap_directions(mixer)(x.flip(1))[0], y.flip(1))
    assert not torch.allclose(mixer(x.flip(1))[0], y.flip(1), atol=1e-3)


def test_bidirectional_mixer_averages_its_two_directions():
    """With the backward branch silenced (``B = C = 0`` and ``D = 0``) the output is half the forward branch's:
    the branches are summed and halved (``divide_out``) before the shared ``out_proj``, which has no bias."""
    mixer = _small().blocks[0].mixer
    forward_only = copy.deepcopy(mixer)
    forward_only.bidirectional = forward_only.divide_out = False
    with torch.no_grad():
        mixer.x_proj_b.weight.zero_()
        mixer.D_b.zero_()
    x = torch.randn(2, 9, 32)
    torch.testing.assert_close(mixer(x)[0], forward_only(x)[0] / 2)


def test_gradient_checkpointing_gives_the_same_output_and_gradients():
    model, images = _small(), torch.randn(2, 3, 32, 32)
    model(images).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(images).sum().backward()
    for want, parameter in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, want)


def test_stride8_patches_overlap_on_the_official_grid():
    with torch.device("meta"):
        model = timm.create_model("vim_tiny_patch16_stride8_224")
    assert model.patch_embed.grid_size == (27, 27) and model.pos_embed.shape == (1, 27 * 27 + 1, 192)
    assert model.cls_index == 364 and model.feature_info[0]["reduction"] == 8
    small = _small(stride=8)
    assert small.patch_embed.grid_size == (3, 3)
    assert small.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 10, 32)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.randn(2, 1, 32, 32), ValueError, "C = in_chans = 3"),
        (torch.randn(2, 3, 48, 32), ValueError, "must be 32x32"),
        (torch.randn(3, 32, 32), ValueError, r"\[B, C, H, W\]"),
        (torch.randint(0, 255, (2, 3, 32, 32)), TypeError, "floating"),
    ],
)
def test_bad_images_are_refused_with_the_shape_in_the_message(images, error, match):
    with pytest.raises(error, match=match):
        _small()(images)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="does not tile into 16px patches at stride 16"):
        VisionMamba(img_size=40, embed_dim=32, depth=1)
    with pytest.raises(ValueError, match="global_pool"):
        VisionMamba(img_size=32, embed_dim=32, depth=1, global_pool="max")
