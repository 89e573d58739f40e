"""VMamba on small inputs: the cross-scan routes, SS2D against a route-by-route loop, training step, errors."""

import pytest
import torch
import torch.nn.functional as F
from lrnn.vision.backbones import SS2D, VMamba, cross_merge, cross_scan

SMALL_V2 = dict(depths=(1, 1, 2, 1), dims=(16, 24, 32, 48), num_classes=10)
SMALL_V0 = dict(SMALL_V2, d_state=4, ssm_ratio=2.0, gate=True, conv_bias=True, mlp_ratio=0.0)
SMALL_V0.update(stem_version="v1", downsample_version="v1")


def _small(config: dict, **overrides) -> VMamba:
    torch.manual_seed(0)
    return VMamba(**dict(config, **overrides))


def test_cross_scan_routes_on_a_labelled_grid():
    height, width = 3, 5
    grid = torch.arange(height * width, dtype=torch.float32).view(1, height, width, 1)
    orders = cross_scan(grid)[0, :, :, 0]
    row_major = torch.arange(15.0)
    column_major = torch.tensor([h * width + w for w in range(width) for h in range(height)], dtype=torch.float32)
    torch.testing.assert_close(orders.T, torch.stack([row_major, column_major]))


def test_cross_merge_is_the_adjoint_of_cross_scan():
    x, y = torch.randn(2, 3, 5, 4), torch.randn(2, 15, 2, 4)
    torch.testing.assert_close((cross_scan(x) * y).sum(), (x * cross_merge(y, 3, 5)).sum())
    torch.testing.assert_close(cross_merge(cross_scan(x), 3, 5), 2 * x)


def _route_by_route(ss2d: SS2D, x: torch.Tensor) -> torch.Tensor:
    """SS2D written as VMamba's ``selective_scan_torch`` reads: each route scanned on its own, step by step, with
    its own slice of the parameters, then put back in row-major order and summed."""
    batch, height, width, _ = x.shape
    inner, state, rank = ss2d.d_inner, ss2d.d_state, ss2d.dt_rank
    x = ss2d.in_proj(x)
    x, z = x.chunk(2, dim=-1) if ss2d.gate else (x, None)
    x = F.silu(ss2d.conv2d(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
    orders = [
        lambda t: t.flatten(1, 2),
        lambda t: t.transpose(1, 2).flatten(1, 2),
        lambda t: t.flatten(1, 2).flip(1),
        lambda t: t.transpose(1, 2).flatten(1, 2).flip(1),
    ]
    inverses = [
        lambda s: s.view(batch, height, width, -1),
        lambda s: s.view(batch, width, height, -1).transpose(1, 2),
        lambda s: s.flip(1).view(batch, height, width, -1),
        lambda s: s.flip(1).view(batch, width, height, -1).transpose(1, 2),
    ]
    y = 0
    for k in range(4):
        u = orders[k](x)
        dt, B, C = (u @ ss2d.x_proj_weight[k].T).split([rank, state, state], dim=-1)
        dt = F.softplus(dt @ ss2d.dt_projs_weight[k].T + ss2d.dt_projs_bias[k])
        A = -torch.exp(ss2d.A_logs[k * inner : (k + 1) * inner])
        h, outputs = torch.zeros(batch, inner, state), []
        for t in range(u.shape[1]):
            h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * u[:, t])[..., None] * B[:, t, None]
            outputs.append((h * C[:, t, None]).sum(-1) + ss2d.Ds[k * inner : (k + 1) * inner] * u[:, t])
        y = y + inverses[k](torch.stack(outputs, dim=1))
    y = ss2d.out_norm(y)
    return ss2d.out_proj(y * F.silu(z) if z is not None else y)


@pytest.mark.parametrize("version", [dict(d_state=1, ssm_ratio=1.0), dict(d_state=3, gate=True, conv_bias=True)])
def test_ss2d_matches_its_four_routes_scanned_one_by_one(version):
    torch.manual_seed(0)
    ss2d = SS2D(16, **version).double()
    x = torch.randn(2, 3, 5, 16, dtype=torch.float64)
    torch.testing.assert_close(ss2d(x), _route_by_route(ss2d, x))


@pytest.mark.parametrize("config", [SMALL_V2, SMALL_V0], ids=["v2", "v0"])
def test_forward_backward_reaches_every_parameter(config):
    model = _small(config, drop_path_rate=0.1)
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, torch.tensor([3, 5])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_features_are_unpooled_channels_last_and_the_head_averages_them():
    model = _small(SMALL_V2).eval()
    images = torch.randn(2, 3, 64, 64)
    features = model.forward_features(images)
    assert features.shape == (2, 2, 2, 48)
    torch.testing.assert_close(model.forward_head(features), model.head.fc(features.mean((1, 2))))


def test_odd_sizes_pass_through_the_conv_stem_and_downsamples():
    model = _small(SMALL_V2).eval()
    features = model.forward_intermediates(torch.randn(1, 3, 50, 70), intermediates_only=True)
    assert [tuple(f.shape[-2:]) for f in features] == [(13, 18), (7, 9), (4, 5), (2, 3)]


@pytest.mark.parametrize(
    ("config", "images", "error", "match"),
    [
        (SMALL_V2, torch.randn(2, 1, 64, 64), ValueError, "C = in_chans = 3"),
        (SMALL_V0, torch.randn(2, 4, 64, 64), ValueError, "C = in_chans = 3"),
        (SMALL_V0, torch.randn(2, 3, 64, 48 + 8), ValueError, "divisible by 32, got 64x56"),
        (SMALL_V2, torch.randn(3, 64, 64), ValueError, r"\[B, C, H, W\]"),
        (SMALL_V2, torch.zeros(2, 3, 64, 64, dtype=torch.long), TypeError, "floating"),
    ],
    ids=["v2-channels", "v0-channels", "v0-size", "no-batch", "integer"],
)
def test_bad_images_are_refused_with_the_shape_in_the_message(config, images, error, match):
    with pytest.raises(error, match=match):
        _small(config)(images)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="one entry per stage"):
        VMamba(depths=(1, 1), dims=(8, 16, 32))
    with pytest.raises(ValueError, match="downsample_version"):
        VMamba(depths=(1,), dims=(8,), downsample_version="v2")


def test_gradient_checkpointing_gives_the_same_gradients():
    model, images = _small(SMALL_V2), torch.randn(1, 3, 32, 32)
    model(images).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(images).sum().backward()
    for want, parameter in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, want)


def test_compiles_without_graph_breaks():
    """One graph for the whole forward (``fullgraph``), the same logits as eager."""
    model = _small(SMALL_V2).eval()
    x = torch.randn(1, 3, 64, 64)
    torch._dynamo.reset()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True, backend="aot_eager")(x), model(x))
